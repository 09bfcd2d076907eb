#!/usr/bin/python3
"""Writes the small weight-file fixtures the tests read, with the numpy of Debian 12 (python3-numpy 1.24).

Run from this folder:  /usr/bin/python3 make_fixtures.py
The arrays follow the "tiny" architecture of Tests/Weights/TinyNet.cs; every value is exactly representable
in float16, so each fixture must read back bit for bit. The Python-2-style protocol-2 file is not made here:
the tests write it byte by byte (Tests/Weights/Py2PickleWriter.cs), the way Python 2 numpy did.
"""
import io, os, pickle, pickletools, sys
import numpy as np
from numpy.lib import format as npformat

# name, weight shape (HWIO or (in, out)); must match TinyNet.cs
TINY = [
    ("conv1", (3, 3, 3, 4)),
    ("conv2", (3, 3, 2, 6)),
    ("conv3", (3, 3, 6, 6)),
    ("conv4", (3, 3, 3, 6)),
    ("conv5", (3, 3, 3, 4)),
    ("fc6", (36, 8)),
    ("fc7", (8, 8)),
    ("fc8", (8, 5)),
]


def values(layer_index, shape):
    """The formula of TinyNet.Weight / TinyNet.Bias."""
    n = int(np.prod(shape))
    i = np.arange(n, dtype=np.int64)
    w = (((i * 7 + layer_index * 13) % 251) - 125) / 64.0
    b = ((np.arange(shape[-1]) % 17) - 8) / 8.0 + layer_index
    return w.reshape(shape).astype(np.float32), b.astype(np.float32)


def tiny_dict(dtype=np.float32):
    return {name: [w.astype(dtype), b.astype(dtype)] for k, (name, shape) in enumerate(TINY) for w, b in [values(k, shape)]}


def object_npy(path, obj, protocol, transform=None):
    """What np.save(path, np.array(d, dtype=object), allow_pickle=True) writes, with a chosen protocol
    (numpy 1.24's np.save always uses protocol 3)."""
    arr = np.array(obj, dtype=object)
    buf = io.BytesIO()
    npformat._write_array_header(buf, npformat.header_data_from_array_1_0(arr), (1, 0))
    body = pickle.dumps(arr, protocol=protocol)
    if transform:
        body = transform(body)
    with open(path, "wb") as f:
        f.write(buf.getvalue() + body)


def numpy2_names(body):
    """numpy 2 pickles name the module numpy._core.multiarray; rename and re-frame."""
    body = body.replace(b"\x8c\x15numpy.core.multiarray", b"\x8c\x16numpy._core.multiarray")
    body = body.replace(b"numpy.core.multiarray\n", b"numpy._core.multiarray\n")
    return pickletools.optimize(body)


class Evil:
    def __reduce__(self):
        return (eval, ("__import__('os').system('touch /tmp/alexnet-weights-pwned-by-eval')",))


def main():
    d = tiny_dict()
    np.save("tiny_py3_np_save.npy", np.array(d, dtype=object), allow_pickle=True)  # protocol 3
    for p in (2, 3, 4, 5):
        object_npy(f"tiny_py3_p{p}.npy", d, p)
    object_npy("tiny_numpy2_p4.npy", d, 4, numpy2_names)
    object_npy("tiny_numpy2_p2.npy", d, 2, numpy2_names)
    object_npy("tiny_f8_p4.npy", tiny_dict(np.float64), 4)
    object_npy("tiny_f2_p4.npy", tiny_dict(np.float16), 4)
    object_npy("tiny_be_p2.npy", tiny_dict(np.dtype(">f4")), 2)
    object_npy("tiny_fortran_p3.npy", {k: [np.asfortranarray(w), b] for k, (w, b) in d.items()}, 3)
    # caffe-tensorflow's layout: {'conv1': {'weights': W, 'biases': b}}
    object_npy("tiny_caffe_tf_p4.npy", {k: {"weights": w, "biases": b} for k, (w, b) in d.items()}, 4)

    np.savez("tiny_underscore.npz", **{f"{k}_{s}": a for k, (w, b) in d.items() for s, a in (("W", w), ("b", b))})
    np.savez_compressed("tiny_slash.npz", **{f"{k}/{s}": a for k, (w, b) in d.items() for s, a in (("weights", w), ("biases", b))})

    # Plain arrays of conv2's weights in every supported dtype, order and header version.
    w = d["conv2"][0]
    np.save("conv2_f4_le.npy", w)
    np.save("conv2_f4_be.npy", w.astype(">f4"))
    np.save("conv2_f8_le.npy", w.astype("<f8"))
    np.save("conv2_f2_le.npy", w.astype("<f2"))
    np.save("conv2_f4_fortran.npy", np.asfortranarray(w))
    for v in ((2, 0), (3, 0)):
        with open(f"conv2_f4_v{v[0]}.npy", "wb") as f:
            npformat.write_array(f, w, version=v)
    np.save("conv2_i4.npy", w.astype("<i4"))

    # Refused: builtins.eval in protocol 4's STACK_GLOBAL form.
    object_npy("malicious_eval_p4.npy", {"conv1": [Evil()]}, 4)

    # Self-check: numpy reads back every pickled fixture to the same values.
    sys.modules.setdefault("numpy._core", np.core)
    sys.modules.setdefault("numpy._core.multiarray", np.core.multiarray)
    for f in sorted(os.listdir(".")):
        if f.startswith("tiny_") and f.endswith(".npy"):
            got = np.load(f, allow_pickle=True).item()
            for k, (wr, br) in d.items():
                gw, gb = (got[k]["weights"], got[k]["biases"]) if isinstance(got[k], dict) else got[k]
                assert np.array_equal(gw.astype(np.float32), wr) and np.array_equal(gb.astype(np.float32), br), (f, k)
    print("fixtures written with numpy", np.__version__)


if __name__ == "__main__":
    main()
