"""Per-layer clustering table. Being written."""
from ibtui.engine.probes import Probe


class ClusteringProbe(Probe):
    def __init__(self, engine):
        pass
