"""An estimator that measures a subset of the MI points (matrix-Rényi, KSG) is bounded by log2 of its own count:
the info plane's ceiling line and the figures use that count, carried in RunInfo.estimator_points."""
from dataclasses import asdict

from ibtui.engine.probes.base import subset_points
from ibtui.records import RunInfo
from ibtui.sinks.replay import info_from_meta
from ibtui.sinks.runs import run_info_fits


class _Probe:
    def __init__(self, points):
        self.points = points


def _info(**kw) -> RunInfo:
    return RunInfo(run="r", scenario_path="", device="cpu", seeds=(0,), epochs=1, layers=("1",), layer_widths=(4,),
                   n_points=4096, mi_points="all", estimators=("bin30", "renyi"), estimator_settings={},
                   noise_levels=(0.0,), **kw)


def test_only_estimators_keeping_fewer_points_are_listed():
    probes = [_Probe({"renyi": 512}), _Probe({"ksg": 0}), _Probe({"x": 5000}), object()]
    assert subset_points(probes, 4096) == {"renyi": 512}


def test_ceiling_is_the_estimators_own_count_and_survives_the_sidecar():
    info = _info(estimator_points={"renyi": 512})
    assert info.ceiling_points("renyi") == 512
    assert info.ceiling_points("bin30") == 4096
    d = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(info).items()}
    assert run_info_fits(d)
    back = info_from_meta({"run_info": d})
    assert back is not None and back.ceiling_points("renyi") == 512
    # an older sidecar without the field still reads, with every estimator at n_points
    d.pop("estimator_points")
    old = info_from_meta({"run_info": d})
    assert old is not None and old.ceiling_points("renyi") == 4096
    assert not run_info_fits({**d, "estimator_points": {"renyi": "512"}})
