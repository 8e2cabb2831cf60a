"""Training dynamics per layer (gradient SNR, weight norms, transition, Gaussian bound). Being written."""
from ibtui.engine.probes import Probe


class DynamicsProbe(Probe):
    def __init__(self, engine):
        pass
