"""Own data (`data.dataset = "npz"`): a good file trains with its own widths; every hostile or broken file is
one sentence and exit 2, and a pickle inside one never runs."""
from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from conftest import cli
from helpers import Payload
from ibtui.data.npz import read_npz
from ibtui.errors import DataFormatError, DataMissingError

TINY = ["--set", "run.epochs=3", "--set", "run.seeds=2", "--set", "measure.snapshots=3", "--device", "cpu", "-q"]


def scenario(folder, path="mine.npz", extra=""):
    f = folder / "own.toml"
    f.write_text(f'name = "own"\n[data]\ndataset = "npz"\npath = "{path}"\n[model]\nhidden = [6, 4]\n{extra}',
                 encoding="utf-8")
    return f


def blobs(n=60, d=5, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    return (rng.normal(size=(n, d)) + y[:, None]).astype("float32"), y.astype("int64")


def refused(res, *words):
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    err = res.stderr.strip()
    assert err.startswith("ibtui: ") and "\n" not in err and "Traceback" not in err, err
    for w in words:
        assert w in err, (w, err)
    return err


def test_own_data_trains_with_its_widths_and_its_test_set(tmp_path):
    x, y = blobs(60, 5, 3)
    np.savez(tmp_path / "mine.npz", x=x, y=y, x_test=x[:9], y_test=y[:9])
    res = cli(scenario(tmp_path), "-o", tmp_path / "run.csv", *TINY)
    assert res.returncode == 0, res.stderr
    meta = json.loads((tmp_path / "run.meta.json").read_text())
    info = meta["run_info"]
    assert info["layer_widths"][-1] == 3 and info["layer_widths"][:2] == [6, 4]  # C = 3 outputs, from the data
    assert any("60 training and 9 test points" in n and "5 features, 3 classes" in n for n in info["notes"])
    assert meta["scenario"]["data"]["path"] == str(tmp_path / "mine.npz")  # relative to the scenario file


def test_without_a_test_set_the_scenario_split_applies(tmp_path):
    x, y = blobs(50, 2, 2)
    np.savez(tmp_path / "mine.npz", x=x, y=y)
    res = cli(scenario(tmp_path), "-o", tmp_path / "run.csv", *TINY, "--set", "data.train_fraction=0.6")
    assert res.returncode == 0, res.stderr
    info = json.loads((tmp_path / "run.meta.json").read_text())["run_info"]
    assert any("50 points split by data.split = 'random', train_fraction 0.6" in n for n in info["notes"])


def test_a_pickled_object_array_is_refused_and_never_runs(tmp_path):
    target = tmp_path / "pwned"
    x, y = blobs()
    obj = np.empty(len(x), dtype=object)
    obj[:] = [Payload(target)] * len(x)
    np.savez(tmp_path / "mine.npz", x=obj, y=y)
    refused(cli(scenario(tmp_path), *TINY), "array x is an object array", "pickle", "never loads")
    assert not target.exists()
    (tmp_path / "mine.npz").write_bytes(pickle.dumps({"x": Payload(target), "y": y}))  # a bare pickle file
    refused(cli(scenario(tmp_path), *TINY), "not an .npz/.npy file", "pickle")
    assert not target.exists()


@pytest.mark.parametrize("arrays, words", [
    (lambda x, y: {"x": x}, "has no array y"),
    (lambda x, y: {"y": y, "z": x}, "has no array x"),
    (lambda x, y: {"x": x, "y": y, "x_test": x}, "has x_test but no y_test"),
    (lambda x, y: {"x": x[:, 0], "y": y}, "x has shape (60,); it must be N × d"),
    (lambda x, y: {"x": x.reshape(60, 5, 1), "y": y}, "x has shape (60, 5, 1)"),
    (lambda x, y: {"x": x, "y": np.eye(3, dtype="int64")[y]}, "not one-hot"),
    (lambda x, y: {"x": x, "y": y[:-1]}, "x has 60 rows but y has 59 labels"),
    (lambda x, y: {"x": x, "y": y.astype("float32")}, "y has dtype float32; it must hold integer class ids"),
    (lambda x, y: {"x": x.astype(str), "y": y}, "not numbers"),
    (lambda x, y: {"x": np.where(np.arange(60)[:, None] == 7, np.nan, x), "y": y}, "x[7, 0] is nan"),
    (lambda x, y: {"x": np.where(np.arange(60)[:, None] == 3, np.inf, x), "y": y}, "x[3, 0] is inf"),
    (lambda x, y: {"x": x, "y": y - 1}, "y has label -1; class ids are 0…C−1"),
    (lambda x, y: {"x": x, "y": np.where(y == 1, 7, y)}, "labels up to 7 but no point of class 1"),
    (lambda x, y: {"x": x, "y": np.zeros_like(y)}, "class 0 only"),
    (lambda x, y: {"x": x, "y": y, "x_test": x[:4], "y_test": np.array([0, 1, 2, 3])}, "y_test has label 3"),
    (lambda x, y: {"x": x, "y": y, "x_test": x[:4, :2], "y_test": y[:4]}, "x_test has 2 features a row but x has 5"),
    (lambda x, y: {"x": x, "y": y, "x_test": np.full((4, 5), np.nan), "y_test": y[:4]}, "x_test[0, 0] is nan"),
])
def test_a_broken_file_is_one_sentence(tmp_path, arrays, words):
    x, y = blobs()
    np.savez(tmp_path / "mine.npz", **arrays(x, y))
    with pytest.raises(DataFormatError) as err:
        read_npz(tmp_path / "mine.npz")
    assert words in str(err.value) and "\n" not in str(err.value)


def test_through_the_command_line_exit_2(tmp_path):
    x, y = blobs()
    np.savez(tmp_path / "mine.npz", x=x, y=y - 1)
    refused(cli(scenario(tmp_path), *TINY), "data.path", "y has label -1")
    np.save(tmp_path / "one.npy", x)
    refused(cli(scenario(tmp_path, "one.npy"), *TINY), "one bare array (.npy)")
    (tmp_path / "text.npz").write_text("x,y\n1,2\n")
    refused(cli(scenario(tmp_path, "text.npz"), *TINY), "text.npz")
    refused(cli(scenario(tmp_path, "absent.npz"), *TINY), "absent.npz': no such file")
    f = tmp_path / "nopath.toml"
    f.write_text('[data]\ndataset = "npz"\n', encoding="utf-8")
    refused(cli("show", f), "data.dataset = \"npz\" needs data.path")
    refused(cli("show", "szt_tanh", "--set", "data.path=\"x.npz\""), "data.path is read only with data.dataset")


def test_missing_file_is_a_missing_data_error(tmp_path):
    with pytest.raises(DataMissingError):
        read_npz(tmp_path / "nothing.npz")


# ---- issue 34: sizes from the headers before reading, special files, the real cause, every zip fault a sentence
def _npy_header(shape, descr="<f4"):
    """A .npy version 1.0 header announcing `shape` of `descr` (no data)."""
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def _zip(path, members, compress=0):
    """An .npz written member by member: {name: bytes or ZipInfo-tweaking (bytes, dict)}."""
    import zipfile

    with zipfile.ZipFile(path, "w", compression=compress) as z:
        for name, data in members.items():
            attrs = {}
            if isinstance(data, tuple):
                data, attrs = data
            info = zipfile.ZipInfo(name)
            info.compress_type = compress
            for k, v in attrs.items():
                setattr(info, k, v)
            z.writestr(info, data)
    return path


def _npy(array) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def test_sizes_are_checked_from_the_headers_before_reading(tmp_path):
    import time

    x, y = blobs()
    cases = {  # the header alone announces far more than the file holds: refused before reading
        "rows": _npy_header((10**12, 5)), "dtype": _npy_header((60,), "|V2000000000"),
        "bomb": _npy_header((1 << 30,)),  # 4 GiB of float32, announced by a header in a tiny member
    }
    for name, head in cases.items():
        p = _zip(tmp_path / f"{name}.npz", {"x.npy": head, "y.npy": _npy(y)}, compress=8)
        t = time.perf_counter()
        with pytest.raises(DataFormatError) as err:
            read_npz(p)
        assert time.perf_counter() - t < 2, name
        msg = str(err.value)
        assert "seeds" not in msg and "\n" not in msg, msg
        assert ("V2000000000" in msg and "not numbers" in msg) if name == "dtype" else \
            ("announces shape" in msg and "more than the 2,147,483,648" in msg), msg
    # a header that announces less than the member holds (or more): truncated or corrupt, before reading
    p = _zip(tmp_path / "short.npz", {"x.npy": _npy_header((60, 5)) + x.tobytes()[:100], "y.npy": _npy(y)})
    with pytest.raises(DataFormatError, match="holds 100 data bytes but its header announces 1,200"):
        read_npz(p)


@pytest.mark.slow
def test_a_real_4_gib_member_is_refused_without_inflating(tmp_path):
    """A member of 4 GiB of zeros (deflated to ~4 MB), announced as such: refused from its header at once."""
    import time
    import zipfile

    _, y = blobs()
    bomb = tmp_path / "zeros.npz"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as z:
        with z.open("x.npy", "w", force_zip64=True) as f:
            f.write(_npy_header((1 << 28, 4)))
            zero = bytes(64 << 20)
            for _ in range(64):
                f.write(zero)
        z.writestr("y.npy", _npy(y))
    t = time.perf_counter()
    with pytest.raises(DataFormatError, match="4,294,967,296 bytes"):
        read_npz(bomb)
    assert time.perf_counter() - t < 2


@pytest.mark.parametrize("kind", ["fifo", "dev_zero", "link_to_dev_zero", "folder"])
def test_special_files_say_what_they_are(tmp_path, kind):
    import os

    p = tmp_path / "mine.npz"
    if kind == "fifo":
        os.mkfifo(p)
    elif kind == "dev_zero":
        p = "/dev/zero"
    elif kind == "link_to_dev_zero":
        os.symlink("/dev/zero", p)
    else:
        p.mkdir()
    with pytest.raises(DataMissingError) as err:
        read_npz(p)
    assert {"fifo": "a FIFO", "dev_zero": "a device", "link_to_dev_zero": "a device", "folder": "a folder"}[kind] \
        in str(err.value) and "no such file" not in str(err.value)


@pytest.mark.parametrize("content, words", [
    (b"x,y\n1,2\n", "not an .npz/.npy file (it starts like text)"),
    (None, "not an .npz/.npy file (it starts like text)"),  # /proc/self/environ
    (b"", "not an .npz/.npy file (it is empty)"),
    (pickle.dumps([1, 2]), "it looks like a pickle, which ibtui never loads"),
    (b"\x7fELF\x02\x01\x01\x00" + bytes(100), "another kind of binary file"),
])
def test_a_file_that_is_not_an_npz_says_what_it_is(tmp_path, content, words):
    p = "/proc/self/environ" if content is None else tmp_path / "mine.npz"
    if content is not None:
        p.write_bytes(content)
    with pytest.raises(DataFormatError) as err:
        read_npz(p)
    assert words in str(err.value) and "\n" not in str(err.value)
    if content is None or content.startswith(b"x,y"):
        assert "pickle" not in str(err.value)


def test_labels_and_values_are_reported_as_themselves(tmp_path):
    x, y = blobs()
    np.savez(tmp_path / "u.npz", x=x, y=np.where(y == 2, np.uint64(2**64 - 1), y.astype(np.uint64)))
    with pytest.raises(DataFormatError, match="y has label 18446744073709551615; class ids"):
        read_npz(tmp_path / "u.npz")
    big = x.astype(np.float64)
    big[4, 2] = 1e300
    np.savez(tmp_path / "f.npz", x=big, y=y)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning on the way
        with pytest.raises(DataFormatError, match=r"x\[4, 2\] is 1e\+300, beyond float32's range"):
            read_npz(tmp_path / "f.npz")
    ok = read_npz(_zip(tmp_path / "fortran.npz", {"x.npy": _npy(np.asfortranarray(x.astype(">f8"))),
                                                   "y.npy": _npy(y.astype(">u2"))}, compress=8))
    np.testing.assert_array_equal(ok["x"], x)  # big-endian, Fortran order, deflated: read exactly
    np.testing.assert_array_equal(ok["y"], y)


def _patch(path, field: str, value: int):
    """Set a 2-byte field of every zip header, local and central (APPNOTE 4.3.7, 4.3.12): `flags` (bit 0 =
    encrypted) or `method` (9 = Deflate64)."""
    raw = bytearray(path.read_bytes())
    offsets = {"flags": (6, 8), "method": (8, 10)}[field]
    for sig, off in zip((b"PK\x03\x04", b"PK\x01\x02"), offsets):
        i = raw.find(sig)
        while i >= 0:
            raw[i + off:i + off + 2] = value.to_bytes(2, "little")
            i = raw.find(sig, i + 4)
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("fault, words", [
    ("pickle_member", "object array, stored as a pickle"),
    ("symlink", "is a symbolic link"),
    ("encrypted", "is encrypted"),
    ("deflate64", "compressed with Deflate64"),
    ("corrupt_crc", "cannot be read as a .npz archive (Bad CRC-32"),
    ("corrupt_deflate", "cannot be read as a .npz archive"),
    ("truncated_zip", "cannot be read as a .npz archive"),
    ("not_npy_member", "member x.npy is not a NumPy array"),
])
def test_every_zip_or_member_fault_is_one_sentence(tmp_path, fault, words):
    import zipfile

    target = tmp_path / "pwned"
    x, y = blobs()
    p = tmp_path / "mine.npz"
    members = {"x.npy": _npy(x), "y.npy": _npy(y)}
    if fault == "pickle_member":
        obj = np.empty(3, dtype=object)
        obj[:] = [Payload(target)] * 3
        members["x.npy"] = _npy_header((3,), "|O") + pickle.dumps(obj)  # what numpy.save writes for it
    elif fault == "symlink":
        members["x.npy"] = (b"/etc/passwd", {"external_attr": 0o120777 << 16, "create_system": 3})
    elif fault == "not_npy_member":
        members["x.npy"] = b"hello, not an array"
    _zip(p, members, compress=zipfile.ZIP_DEFLATED if fault == "corrupt_deflate" else zipfile.ZIP_STORED)
    raw = bytearray(p.read_bytes())
    if fault in ("deflate64", "encrypted"):
        _patch(p, *(("method", 9) if fault == "deflate64" else ("flags", 0x1)))
    elif fault == "corrupt_crc":  # one data byte of x changed: the zip's CRC-32 no longer matches
        i = raw.find(x.tobytes()[:16])
        raw[i + 5] ^= 0xFF
        p.write_bytes(bytes(raw))
    elif fault == "corrupt_deflate":
        i = raw.find(b"x.npy") + 5 + 10
        raw[i:i + 40] = bytes(range(40))
        p.write_bytes(bytes(raw))
    elif fault == "truncated_zip":
        p.write_bytes(bytes(raw[:len(raw) // 2]))
    with pytest.raises(DataFormatError) as err:
        read_npz(p)
    assert words in str(err.value) and "\n" not in str(err.value), str(err.value)
    assert not target.exists()


def test_an_npz_of_hostile_members_exit_2_through_the_command_line(tmp_path):
    x, y = blobs()
    _zip(tmp_path / "mine.npz", {"x.npy": _npy_header((10**12, 5)), "y.npy": _npy(y)})
    refused(cli(scenario(tmp_path), *TINY), "data.path", "announces shape (1000000000000, 5)")
