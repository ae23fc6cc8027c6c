"""Writes the crafted files of Tests/Fixtures/bounds/ (issue 12: malicious inputs bounded).

Run with a Python that has keras, h5py and numpy:
    KERAS_BACKEND=jax /opt/kerasvenv/bin/python tools/make_bounds_fixtures.py
Each file is refused by Kiln with one sentence; Tests/KilnKerasTests/BoundsKerasTests.swift
says which sentence. The base is a tiny Sequential model (Input 3 -> Dense 2) saved by Keras.
"""
import io, os, struct, zipfile, zlib
import h5py, numpy as np
import keras

out = "Tests/Fixtures/bounds"
os.makedirs(out, exist_ok=True)

model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="dense")])
base_path = os.path.join(out, "dense_ok.keras")
model.save(base_path)
with zipfile.ZipFile(base_path) as z:
    entries = {n: z.read(n) for n in z.namelist()}
config, h5 = entries["config.json"], entries["model.weights.h5"]


def write_zip(name, files, method=zipfile.ZIP_DEFLATED):
    with zipfile.ZipFile(os.path.join(out, name), "w", method) as z:
        for n, data in files.items():
            z.writestr(n, data)


def patch_sizes(name, entry, compressed=None, uncompressed=None):
    """Rewrites the sizes the zip's local header and central directory declare for entry."""
    path = os.path.join(out, name)
    b = bytearray(open(path, "rb").read())
    enc = entry.encode()
    # (signature, offset of the name length, of the name, of the compressed and uncompressed sizes)
    for sig, nlen_at, name_at, csize_at, usize_at in ((b"PK\x03\x04", 26, 30, 18, 22),   # local headers
                                                      (b"PK\x01\x02", 28, 46, 20, 24)):  # central directory
        i = 0
        while True:
            i = b.find(sig, i)
            if i < 0: break
            nlen = struct.unpack_from("<H", b, i + nlen_at)[0]
            if bytes(b[i + name_at:i + name_at + nlen]) == enc:
                if compressed is not None: struct.pack_into("<I", b, i + csize_at, compressed)
                if uncompressed is not None: struct.pack_into("<I", b, i + usize_at, uncompressed)
            i += 4
    open(path, "wb").write(bytes(b))


def h5_image(build):
    """An HDF5 image made by build(f) on a copy of the model's weights file."""
    bio = io.BytesIO(h5)
    with h5py.File(bio, "r+") as f:
        build(f)
    return bio.getvalue()


# Zip bombs. 1: config.json declares 3 GiB (more than Kiln parses as JSON).
write_zip("zip_config_declares_3gib.keras", entries)
patch_sizes("zip_config_declares_3gib.keras", "config.json", uncompressed=3 << 30)
# 2: model.weights.h5 declares 4000 MB stored in a few KB: a ratio deflate cannot reach.
write_zip("zip_weights_ratio_lie.keras", entries)
patch_sizes("zip_weights_ratio_lie.keras", "model.weights.h5", uncompressed=4000 << 20)
# 3: a real bomb: 64 MiB of zeros deflated to ~64 KB, declared as 4096 bytes.
bomb = dict(entries)
bomb["model.weights.h5"] = h5 + bytes(64 << 20)
write_zip("zip_weights_inflates_past_declared.keras", bomb)
patch_sizes("zip_weights_inflates_past_declared.keras", "model.weights.h5", uncompressed=4096)

# Deeply nested config.json (10000 levels of arrays inside the model config).
deep = config.replace(b'"config": {', b'"deep": ' + b"[" * 10000 + b"]" * 10000 + b', "config": {', 1)
write_zip("json_nested_10000.keras", {**entries, "config.json": deep})

# HDF5 with absurd dimensions: the kernel declared (100000, 100000) float32 (40 GB), chunked
# and compressed, with no data written.
def absurd(f):
    del f["layers/dense/vars/0"]
    f["layers/dense/vars"].create_dataset("0", shape=(100000, 100000), dtype="f4", chunks=(1, 1000), compression="gzip")
write_zip("h5_absurd_dims.keras", {**entries, "model.weights.h5": h5_image(absurd)})

# HDF5 whose kernel (six values) sits in one deflated chunk of 8192 x 8192 float32: 256 MiB,
# nearly all fill, in about 270 KB. Reading the six values makes libhdf5 inflate the whole chunk,
# into a buffer it grows by doubling.
def big_chunk(f):
    kernel = f["layers/dense/vars/0"][...]
    del f["layers/dense/vars/0"]
    f["layers/dense/vars"].create_dataset("0", data=kernel, maxshape=(None, None), chunks=(8192, 8192),
                                          compression="gzip", compression_opts=9)
write_zip("h5_deflated_chunk_256mib.keras", {**entries, "model.weights.h5": h5_image(big_chunk)})

# HDF5 with a cycle: layers/dense/loop is a hard link back to layers/dense.
def cycle(f):
    f["layers/dense/loop"] = f["layers/dense"]
write_zip("h5_cycle.keras", {**entries, "model.weights.h5": h5_image(cycle)})

# HDF5 with an external link in place of the bias: libhdf5 would open another file.
def external(f):
    del f["layers/dense/vars/1"]
    f["layers/dense/vars/1"] = h5py.ExternalLink("/etc/kiln-elsewhere.h5", "/bias")
write_zip("h5_external_link.keras", {**entries, "model.weights.h5": h5_image(external)})

# HDF5 cut in half: its superblock declares more bytes than the image has.
write_zip("h5_truncated.keras", {**entries, "model.weights.h5": h5[: len(h5) // 2]})

# HDF5 whose superblock has an unknown version (9).
bad = bytearray(h5); bad[8] = 9
write_zip("h5_superblock_version.keras", {**entries, "model.weights.h5": bytes(bad)})
# A config declaring an input of 2^30 x 2^30 values per sample (the weights fit it: a Dense
# on its last axis would not, so the model is Input -> ReLU, which has none): compiling
# refuses it, naming the layer, before any kernel or buffer is sized.
import json
cfg = json.loads(config)
cfg["config"]["layers"] = [l for l in cfg["config"]["layers"] if l["class_name"] == "InputLayer"]
cfg["config"]["layers"][0]["config"]["batch_shape"] = [None, 2 ** 30, 2 ** 30]
cfg["config"]["layers"].append({"module": "keras.layers", "class_name": "ReLU", "registered_name": None,
    "config": {"name": "huge_relu", "trainable": True, "dtype": "float32", "max_value": None,
               "negative_slope": 0.0, "threshold": 0.0}})
def relu_only(f):
    del f["layers/dense"]
    f.create_group("layers/huge_relu/vars")
empty = h5_image(relu_only)
write_zip("config_activation_4eib.keras", {"metadata.json": entries["metadata.json"],
                                             "config.json": json.dumps(cfg).encode(), "model.weights.h5": empty})
# A Dense of 2^62 units: refused from the config's number alone, before any shape arithmetic.
cfg = json.loads(config)
dense = [l for l in cfg["config"]["layers"] if l["class_name"] == "Dense"][0]
dense["config"]["units"] = 2 ** 62
write_zip("config_units_2e62.keras", {**entries, "config.json": json.dumps(cfg).encode()})
print("wrote", sorted(os.listdir(out)))
