"""CIFAR batches are read without executing code: only dicts, lists, bytes/str, numbers and numpy arrays."""
import os
import pickle

import numpy as np
import pytest

from ibtui.data.images import _unpickle
from ibtui.errors import DataFormatError


class _Reduce:
    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return (self.func, self.args)


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_crafted_pickles_run_no_code(tmp_path, protocol):
    target = tmp_path / "created"
    for payload in (_Reduce(open, (str(target), "w")), _Reduce(os.system, (f"touch {target}",)),
                    _Reduce(eval, (f"open({str(target)!r}, 'w')",)),
                    _Reduce(np.save, (str(target), np.zeros(1)))):  # even a numpy function other than the array's own
        p = tmp_path / "data_batch_1"
        p.write_bytes(pickle.dumps({b"data": payload, b"labels": [0]}, protocol=protocol))
        with pytest.raises(DataFormatError, match="not a CIFAR batch"):
            _unpickle(p)
        assert not target.exists() and not target.with_suffix(".npy").exists()


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_real_batch_shapes_still_load(tmp_path, protocol):
    data = np.arange(2 * 3072, dtype=np.uint8).reshape(2, 3072)
    p = tmp_path / "b"
    p.write_bytes(pickle.dumps({b"data": data, b"labels": [3, 4], b"batch_label": b"x", "names": ["a"]},
                               protocol=protocol))
    d = _unpickle(p)
    assert np.array_equal(d["data"], data) and d["labels"] == [3, 4] and d["names"] == ["a"]


@pytest.mark.parametrize("content", [b"", b"garbage", b"\x80\x05\x95", pickle.dumps([1, 2]), bytes(range(256))])
def test_garbage_is_not_a_batch(tmp_path, content):
    p = tmp_path / "b"
    p.write_bytes(content)
    with pytest.raises(DataFormatError):
        _unpickle(p)
