"""The model bundle (docs/bundle.md): a directory (or zip) that either backend can load, safely.

Three files and nothing else: ``manifest.json`` (format, version, backend, config, scales, history, dataset
fingerprint, sha256 of the other two), ``weights.safetensors`` (canonical names and OIHW layout, float32) and
``physics.safetensors`` (``probe_real``/``probe_imag``). safetensors holds raw tensors only, so loading never
unpickles nor executes anything; every other file is refused rather than ignored, so that nobody is tempted to
ship a pickle beside it. Every refusal is an ``InputError(path, key, expected ...)`` (exit 2). docs/bundle.md.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from engine.atomic import atomic_path, write_bytes
from engine import config as _config
from engine.backends import BACKENDS
from engine.errors import InputError
from engine.events import json_clean
from engine.scaling import Scales
from engine.weights import check_weights

FORMAT = "pinnacle-bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
WEIGHTS = "weights.safetensors"
PHYSICS = "physics.safetensors"
DATA_FILES = (WEIGHTS, PHYSICS)
ALLOWED = (MANIFEST, *DATA_FILES)
#: Largest member read from a zip (guards against zip bombs; a paper-size network is ~20 MB).
MAX_MEMBER_BYTES = 1 << 30
_EXPECTED_FILES = f"a bundle holds only {', '.join(ALLOWED)}"


@dataclass(frozen=True)
class Bundle:
    """A loaded, verified bundle. ``manifest_sha256`` identifies it in provenance records."""

    run_config: _config.RunConfig
    weights: dict[str, np.ndarray]
    scales: Scales
    probe: np.ndarray  # (N, N) complex64
    manifest: dict
    manifest_sha256: str

    @property
    def backend(self) -> str:
        return self.manifest["backend"]

    @property
    def history(self) -> list[dict]:
        return self.manifest.get("history", [])


# -------------------------------------------------------------------------------------------------- write
def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write_atomic(path: Path, data: bytes) -> None:
    write_bytes(path, data)


def write_bundle(directory: str | os.PathLike, *, weights: dict[str, np.ndarray], run_config: _config.RunConfig,
                 scales: Scales, probe: np.ndarray, history: list[dict], dataset_fingerprint,
                 backend: str) -> Path:
    """Write the three bundle files into ``directory`` (created; the manifest goes last, so a bundle without
    manifest is recognisably unfinished). Weights are checked against the config before anything is written."""
    from safetensors.numpy import save

    problem = check_weights(run_config.model, weights)
    if problem:
        raise ValueError(f"refusing to write a bundle: {problem}")
    N = run_config.model.N
    probe = np.asarray(probe)
    if probe.shape != (N, N):
        raise ValueError(f"refusing to write a bundle: probe shape {probe.shape}, expected {(N, N)}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    blobs = {
        WEIGHTS: save({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in weights.items()}),
        PHYSICS: save({"probe_real": np.ascontiguousarray(probe.real, dtype=np.float32),
                       "probe_imag": np.ascontiguousarray(probe.imag, dtype=np.float32)}),
    }
    for name, data in blobs.items():
        _write_atomic(directory / name, data)
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "backend": backend,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "config": _config.to_dict(run_config),
        "scales": scales.to_dict(),
        "history": json_clean(list(history)),
        "dataset_fingerprint": json_clean(dataset_fingerprint),
        "files": {name: _sha256(data) for name, data in blobs.items()},
    }
    _write_atomic(directory / MANIFEST, (json.dumps(manifest, indent=2, allow_nan=False) + "\n").encode())
    return directory


def zip_bundle(directory: str | os.PathLike, out_zip: str | os.PathLike) -> Path:
    """Pack a verified bundle directory into a flat zip (members at the root), written atomically."""
    load_bundle(directory)  # never zip something that would be refused later
    out = Path(out_zip)
    with atomic_path(out) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in ALLOWED:
            zf.write(Path(directory) / name, arcname=name)
    return out


# --------------------------------------------------------------------------------------------------- read
def _read_dir(src: str, directory: Path) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for entry in sorted(directory.iterdir()):
        if entry.name not in ALLOWED or entry.is_symlink() or not entry.is_file():
            raise InputError(src, entry.name, f"expected no such entry: {_EXPECTED_FILES} (nothing else is read)")
        files[entry.name] = entry.read_bytes()
    return files


def _member_name(src: str, raw: str) -> PurePosixPath:
    """Zip member names are untrusted: no absolute paths, drive letters, backslashes or '..' components."""
    p = PurePosixPath(raw)
    if raw.startswith(("/", "\\")) or "\\" in raw or ":" in raw or any(part == ".." for part in p.parts):
        raise InputError(src, raw, "expected a plain member name (path traversal refused)")
    return p


def _read_zip(src: str, path: Path) -> dict[str, bytes]:
    """Members read in memory; a single top folder (``bundle/manifest.json``) is accepted, nothing deeper."""
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise InputError(src, None, f"expected a bundle directory or a readable zip ({exc})") from exc
    with zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
        names = [_member_name(src, i.filename) for i in infos]
        for i in zf.infolist():
            _member_name(src, i.filename)
        tops = {n.parts[0] for n in names if len(n.parts) > 1}
        prefix = len(tops) == 1 and all(len(n.parts) == 2 for n in names)
        files: dict[str, bytes] = {}
        for info, name in zip(infos, names):
            short = name.parts[-1] if prefix else str(name)
            if short not in ALLOWED or short in files:
                raise InputError(src, info.filename, f"expected no such member: {_EXPECTED_FILES} (nothing else is read)")
            if info.file_size > MAX_MEMBER_BYTES:
                raise InputError(src, info.filename, f"expected a member below {MAX_MEMBER_BYTES} bytes")
            try:
                files[short] = zf.read(info)
            except (zipfile.BadZipFile, OSError, RuntimeError) as exc:
                raise InputError(src, info.filename, f"expected a readable zip member ({exc})") from exc
    return files


def _parse_manifest(src: str, files: dict[str, bytes]) -> dict:
    if MANIFEST not in files:
        raise InputError(src, MANIFEST, f"expected a Pinnacle bundle ({MANIFEST} is missing)")
    try:
        manifest = json.loads(files[MANIFEST].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(src, MANIFEST, f"expected valid JSON ({exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise InputError(src, f"{MANIFEST}: format", f"expected {FORMAT!r} (this is not a Pinnacle bundle)")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise InputError(src, f"{MANIFEST}: format_version",
                         f"expected {FORMAT_VERSION}, got {manifest.get('format_version')!r} (unknown bundle version)")
    for key, kind in (("backend", str), ("config", dict), ("scales", dict), ("history", list), ("files", dict)):
        if not isinstance(manifest.get(key), kind):
            raise InputError(src, f"{MANIFEST}: {key}", f"expected a {kind.__name__}")
    if manifest["backend"] not in BACKENDS:
        raise InputError(src, f"{MANIFEST}: backend", f"expected one of {', '.join(BACKENDS)}")
    return manifest


def _verify_files(src: str, files: dict[str, bytes], listed: dict) -> None:
    for name in listed:
        if name not in DATA_FILES:
            raise InputError(src, f"{MANIFEST}: files.{name}", f"expected only {', '.join(DATA_FILES)}")
    for name in DATA_FILES:
        if name not in listed:
            raise InputError(src, f"{MANIFEST}: files", f"expected a sha256 for {name}")
        if name not in files:
            raise InputError(src, name, "expected the file to be present (listed in the manifest)")
        if _sha256(files[name]) != listed[name]:
            raise InputError(src, name, "expected sha256 " + str(listed[name])[:16] + "… (the file was modified "
                             "or corrupted: sha256 mismatch)")


def _tensors(src: str, name: str, data: bytes) -> dict[str, np.ndarray]:
    from safetensors import SafetensorError
    from safetensors.numpy import load

    try:
        tensors = load(data)
    except (SafetensorError, ValueError, TypeError) as exc:
        raise InputError(src, name, f"expected a safetensors file ({exc})") from exc
    for key, arr in tensors.items():
        if arr.dtype != np.float32:
            raise InputError(src, f"{name}: {key}", f"expected float32, got {arr.dtype}")
    return tensors


def _run_config(src: str, manifest: dict) -> _config.RunConfig:
    try:
        return _config.from_dict(manifest["config"])
    except InputError as exc:  # ConfigError: one bad field
        raise InputError(src, f"{MANIFEST}: config.{exc.key}", f"expected {exc.expected}") from exc
    except (TypeError, AttributeError) as exc:
        raise InputError(src, f"{MANIFEST}: config", f"expected a Pinnacle run config ({exc})") from exc


def _scales(src: str, manifest: dict) -> Scales:
    try:
        scales = Scales.from_dict(manifest["scales"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(src, f"{MANIFEST}: scales", f"expected input_scale, photon_scale, mean_counts, "
                         f"bright_counts ({exc})") from exc
    for key, value in scales.to_dict().items():
        if not (math.isfinite(value) and value > 0):
            raise InputError(src, f"{MANIFEST}: scales.{key}", "expected a positive finite number")
    return scales


def _probe(src: str, tensors: dict[str, np.ndarray], N: int) -> np.ndarray:
    want = {"probe_real", "probe_imag"}
    if set(tensors) != want:
        odd = sorted(set(tensors) ^ want)[0]
        raise InputError(src, f"{PHYSICS}: {odd}", "expected exactly the tensors probe_real and probe_imag")
    for key in sorted(want):
        if tensors[key].shape != (N, N):
            raise InputError(src, f"{PHYSICS}: {key}", f"expected shape {(N, N)}, got {tensors[key].shape}")
        if not np.all(np.isfinite(tensors[key])):
            raise InputError(src, f"{PHYSICS}: {key}", "expected finite values (found NaN or Inf)")
    return (tensors["probe_real"] + 1j * tensors["probe_imag"]).astype(np.complex64)


def load_bundle(path: str | os.PathLike) -> Bundle:
    """Read and verify a bundle directory or zip; refuse (InputError) anything that is not exactly a bundle."""
    src = str(path)
    p = Path(path)
    if p.is_dir():
        files = _read_dir(src, p)
    elif p.is_file():
        files = _read_zip(src, p)
    else:
        raise InputError(src, None, "expected an existing bundle directory or .zip")
    manifest = _parse_manifest(src, files)
    _verify_files(src, files, manifest["files"])
    cfg = _run_config(src, manifest)
    weights = _tensors(src, WEIGHTS, files[WEIGHTS])
    problem = check_weights(cfg.model, weights)
    if problem:
        raise InputError(src, WEIGHTS, f"expected the canonical weights of the manifest's config: {problem}")
    probe = _probe(src, _tensors(src, PHYSICS, files[PHYSICS]), cfg.model.N)
    return Bundle(run_config=cfg, weights=weights, scales=_scales(src, manifest), probe=probe, manifest=manifest,
                  manifest_sha256=_sha256(files[MANIFEST]))
