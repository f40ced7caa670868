"""Digit images behind one loader interface.

Every source returns :class:`DigitsData`: uint8 images of shape (N, 28, 28) (MNIST's layout and
scale, 0..255) and int64 labels, already split into train and test. Only numpy is imported at
module level so that orchestration code (DAG parsing, component specs) stays light.

Sources: ``sklearn`` (bundled 8x8 digits upscaled, offline default), ``hf`` (``ylecun/mnist`` from
the hub/cache, or a local folder written with ``save_to_disk``), ``torchvision`` (optional extra),
``idx`` (MNIST's distributed files, raw or gzipped) and ``npz`` (keras' ``mnist.npz`` layout).
Every user-caused problem becomes a one-line DataError/ToolUnavailableError.
"""

from __future__ import annotations

import gzip
import hashlib
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlopsbench.errors import DataError, ToolUnavailableError
from mlopsbench.usecases.digits.config import DigitsDataConfig

IMAGE_SIZE = 28
NUM_CLASSES = 10
HF_DATASET = "ylecun/mnist"

# MNIST's distributed file names (optionally gzipped).
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


@dataclass(frozen=True)
class DigitsData:
    train_images: np.ndarray  # uint8 (N, 28, 28)
    train_labels: np.ndarray  # int64 (N,)
    test_images: np.ndarray
    test_labels: np.ndarray
    source: str  # human-readable origin, e.g. "sklearn:load_digits"

    def __post_init__(self) -> None:
        for split in ("train", "test"):
            _check_split(split, getattr(self, f"{split}_images"), getattr(self, f"{split}_labels"))

    @property
    def digest(self) -> str:
        """Content hash (first 16 hex chars of SHA-256): the dataset's identity for lineage."""
        h = hashlib.sha256()
        for arr in (self.train_images, self.train_labels, self.test_images, self.test_labels):
            h.update(np.ascontiguousarray(arr).tobytes())
        return h.hexdigest()[:16]

    def summary(self) -> dict[str, object]:
        return {
            "source": self.source,
            "digest": self.digest,
            "n_train": int(self.train_labels.shape[0]),
            "n_test": int(self.test_labels.shape[0]),
        }

    def save(self, path: str | Path) -> Path:
        """Write as an .npz (the hand-over format between pipeline steps), atomically.

        Uncompressed: zlib took ~70 ms per 1,000 images (4 s for MNIST's 60,000, longer than
        five epochs of SimpleNN), to save disk on a file each run writes once and reads once.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(
            tmp,
            x_train=self.train_images,
            y_train=self.train_labels,
            x_test=self.test_images,
            y_test=self.test_labels,
            source=np.array(self.source),
        )
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> DigitsData:
        return _load_npz(Path(path))


def _check_split(split: str, images: np.ndarray, labels: np.ndarray) -> None:
    """Validate one split; the messages name what is wrong so users can fix their files."""
    if images.ndim != 3 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise DataError(f"{split} images must have shape (N, 28, 28), got {tuple(images.shape)}")
    if images.dtype != np.uint8:
        raise DataError(f"{split} images must be uint8 (0..255), got {images.dtype}")
    if images.shape[0] == 0:
        raise DataError(f"{split} split is empty (0 images)")
    if labels.shape != (images.shape[0],):
        raise DataError(
            f"{split} labels shape {tuple(labels.shape)} does not match {images.shape[0]} images"
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{split} labels must be integers, got {labels.dtype}")
    if labels.min() < 0 or labels.max() >= NUM_CLASSES:
        raise DataError(f"{split} labels must be digits 0..9")


def load_digits_data(cfg: DigitsDataConfig) -> DigitsData:
    """Load the configured source. Raises DataError/ToolUnavailableError with a one-line message."""
    loaders: dict[str, Callable[[DigitsDataConfig], DigitsData]] = {
        "sklearn": _load_sklearn,
        "hf": _load_hf,
        "torchvision": _load_torchvision,
        "idx": _load_idx,
        "npz": lambda c: _load_npz(Path(c.path or "")),
    }
    data = loaders[str(cfg.source)](cfg)  # never None: the config resolves it
    if cfg.limit_train is not None and cfg.limit_train < data.train_labels.shape[0]:
        data = _stratified_limit(data, cfg.limit_train, cfg.split_seed)
    return data


def stratified_split(
    images: np.ndarray, labels: np.ndarray, test_fraction: float, seed: int, source: str
) -> DigitsData:
    """Deterministic, class-stratified train/test split (for sources without a test split)."""
    from sklearn.model_selection import train_test_split

    try:
        x_tr, x_te, y_tr, y_te = train_test_split(
            images, labels, test_size=test_fraction, stratify=labels, random_state=seed
        )
    except ValueError as exc:  # too few images per class for the requested split
        raise DataError(f"cannot split {len(labels)} images into train/test: {exc}") from None
    return DigitsData(x_tr, y_tr, x_te, y_te, source=source)


# --- sklearn (default, offline) -------------------------------------------------------------


def _load_sklearn(cfg: DigitsDataConfig) -> DigitsData:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = upscale_to_mnist(bunch.images)
    labels = bunch.target.astype(np.int64)
    return stratified_split(
        images, labels, cfg.test_fraction, cfg.split_seed, source="sklearn:load_digits"
    )


def upscale_to_mnist(images_8x8: np.ndarray) -> np.ndarray:
    """Turn sklearn's 8x8 digits (values 0..16) into MNIST-like 28x28 uint8 images.

    MNIST digits occupy a 20x20 box centred in a 28x28 frame with a black border, so we scale
    each 8x8 image to 20x20 (bilinear), pad 4 pixels each side and map 0..16 to 0..255.
    """
    from scipy.ndimage import zoom

    n = images_8x8.shape[0]
    scaled = zoom(images_8x8.astype(np.float32), (1, 20 / 8, 20 / 8), order=1)
    scaled = np.clip(scaled, 0.0, 16.0) * (255.0 / 16.0)
    out = np.zeros((n, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    out[:, 4:24, 4:24] = np.rint(scaled).astype(np.uint8)
    return out


# --- Hugging Face (the paper's source) ------------------------------------------------------


def _load_hf(cfg: DigitsDataConfig) -> DigitsData:
    """``ylecun/mnist`` from the hub (or its cache), or a folder written by ``save_to_disk``.

    With ``path``: a ``save_to_disk`` folder (DatasetDict with train/test, or one Dataset that
    is split like sklearn's) is read offline; any other existing folder is used as the cache.
    """
    try:
        import datasets
    except ImportError as exc:  # pragma: no cover - datasets is a core dependency
        raise ToolUnavailableError("the 'hf' source needs the 'datasets' package") from exc
    folder = Path(cfg.path) if cfg.path else None
    if folder is not None and not folder.is_dir():
        raise DataError(f"Hugging Face dataset folder not found: {folder}")
    if folder is not None and _is_saved_dataset(folder):
        try:
            ds = datasets.load_from_disk(str(folder))
        except Exception as exc:  # arrow/JSON errors from a damaged folder
            raise DataError(f"cannot read dataset saved in {folder}: {_one_line(exc)}") from None
        return _hf_to_digits(ds, cfg, source=f"hf-disk:{folder}")
    try:
        ds = datasets.load_dataset(HF_DATASET, cache_dir=str(folder) if folder else None)
    except Exception as exc:  # hub errors are many and verbose: condense to one line
        raise DataError(
            f"could not load {HF_DATASET!r} from the Hugging Face hub or cache "
            f"({type(exc).__name__}; offline?); use --data sklearn, or --data hf --data-path "
            "<folder saved with save_to_disk>, or --data idx/npz --data-path <files>"
        ) from None
    return _hf_to_digits(ds, cfg, source=f"hf:{HF_DATASET}")


def _is_saved_dataset(folder: Path) -> bool:
    """True for the layout ``save_to_disk`` writes (a DatasetDict or a single Dataset)."""
    return (folder / "dataset_dict.json").is_file() or (folder / "state.json").is_file()


def _hf_to_digits(ds: Any, cfg: DigitsDataConfig, source: str) -> DigitsData:
    splits = list(ds.keys()) if hasattr(ds, "keys") else None
    if splits is None:  # one Dataset: no fixed test split
        images, labels = _hf_arrays(ds, "dataset")
        return stratified_split(images, labels, cfg.test_fraction, cfg.split_seed, source)
    missing = {"train", "test"} - set(splits)
    if missing:
        raise DataError(
            f"dataset lacks split(s) {', '.join(sorted(missing))} (has: {', '.join(splits)})"
        )
    x_tr, y_tr = _hf_arrays(ds["train"], "train")
    x_te, y_te = _hf_arrays(ds["test"], "test")
    return DigitsData(x_tr, y_tr, x_te, y_te, source=source)


def _hf_arrays(split: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    """The ``image`` and ``label`` columns as numpy (PIL images are decoded by the format)."""
    missing = {"image", "label"} - set(split.column_names)
    if missing:
        raise DataError(
            f"{name} split needs columns 'image' and 'label' (has: {', '.join(split.column_names)})"
        )
    try:
        table = split.with_format("numpy")[:]
        images = np.asarray(table["image"])
        labels = np.asarray(table["label"])
    except Exception as exc:  # undecodable images, ragged shapes
        raise DataError(f"cannot decode the {name} split's images: {_one_line(exc)}") from None
    return as_uint8_images(images, name), labels.astype(np.int64, copy=False)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


# --- torchvision (optional extra) -----------------------------------------------------------


def _load_torchvision(cfg: DigitsDataConfig) -> DigitsData:
    try:
        from torchvision.datasets import MNIST
    except Exception as exc:
        raise ToolUnavailableError(
            "the 'torchvision' source needs torchvision, which is an optional extra with no "
            "CPU build for this torch; use --data hf, idx or npz instead"
        ) from exc
    root = cfg.path or "data/torchvision"
    try:
        train = MNIST(root, train=True, download=True)
        test = MNIST(root, train=False, download=True)
    except Exception as exc:
        raise DataError(
            f"torchvision could not load MNIST under {root}: {_one_line(exc)}"
        ) from None
    return DigitsData(
        train.data.numpy().astype(np.uint8),
        train.targets.numpy().astype(np.int64),
        test.data.numpy().astype(np.uint8),
        test.targets.numpy().astype(np.int64),
        source=f"torchvision:MNIST:{root}",
    )


# --- IDX (MNIST as distributed) -------------------------------------------------------------


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file (optionally gzipped) into a numpy array, validating its header."""
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except FileNotFoundError:
        raise DataError(f"IDX file not found: {path}") from None
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise DataError(f"cannot read IDX file {path}: {_one_line(exc)}") from None
    if len(raw) < 4:
        raise DataError(f"corrupt IDX file {path}: shorter than its 4-byte header")
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code != 0x08:
        raise DataError(f"corrupt IDX file {path}: bad magic (only unsigned-byte IDX supported)")
    header_len = 4 + 4 * ndim
    if len(raw) < header_len:
        raise DataError(f"corrupt IDX file {path}: truncated header")
    dims = struct.unpack(f">{ndim}I", raw[4:header_len])
    expected = int(np.prod(dims)) if dims else 0
    payload = raw[header_len:]
    if len(payload) != expected:
        raise DataError(
            f"corrupt IDX file {path}: header promises {expected} bytes, file has {len(payload)}"
        )
    return np.frombuffer(payload, dtype=np.uint8).reshape(dims)


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array as IDX (used by tests and to export data in MNIST's format)."""
    arr = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">HBB", 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    data = header + arr.tobytes()
    if path.suffix == ".gz":
        data = gzip.compress(data)
    path.write_bytes(data)


def _find_idx(folder: Path, stem: str) -> Path:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    raise DataError(f"missing {stem}[.gz] in {folder}")


def _load_idx(cfg: DigitsDataConfig) -> DigitsData:
    folder = Path(cfg.path or "")
    if not folder.is_dir():
        raise DataError(f"IDX data folder not found: {folder}")
    arrays = {key: read_idx(_find_idx(folder, stem)) for key, stem in IDX_FILES.items()}
    for split in ("train", "test"):
        if arrays[f"{split}_images"].ndim != 3:
            raise DataError(f"{split} IDX images must be 3-D (N, 28, 28)")
        if arrays[f"{split}_labels"].ndim != 1:
            raise DataError(f"{split} IDX labels must be 1-D")
    return DigitsData(
        arrays["train_images"],
        arrays["train_labels"].astype(np.int64),
        arrays["test_images"],
        arrays["test_labels"].astype(np.int64),
        source=f"idx:{folder}",
    )


# --- npz (keras' mnist.npz layout: x_train, y_train, x_test, y_test) -------------------------


def _load_npz(path: Path) -> DigitsData:
    if not path.is_file():
        raise DataError(f"npz file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = {"x_train", "y_train", "x_test", "y_test"} - set(npz.files)
            if missing:
                raise DataError(f"npz file {path} lacks arrays: {', '.join(sorted(missing))}")
            arrays = {k: npz[k] for k in ("x_train", "y_train", "x_test", "y_test")}
            source = str(npz["source"]) if "source" in npz.files else f"npz:{path}"
    except DataError:
        raise
    except Exception as exc:  # zipfile.BadZipFile, ValueError (pickled arrays), OSError...
        raise DataError(f"corrupt npz file {path}: {_one_line(exc)}") from None
    origin = f"npz file {path}"
    return DigitsData(
        as_uint8_images(arrays["x_train"], "train", origin),
        _as_int_labels(arrays["y_train"], "train", origin),
        as_uint8_images(arrays["x_test"], "test", origin),
        _as_int_labels(arrays["y_test"], "test", origin),
        source=source,
    )


def as_uint8_images(images: np.ndarray, split: str, origin: str | None = None) -> np.ndarray:
    """Accept uint8, or numbers in 0..255 (rounded); refuse floats in [0, 1] (wrong scale).

    ``origin`` (e.g. "npz file data.npz") prefixes the error so users know which file to fix.
    """
    if images.dtype == np.uint8:
        return images
    if not np.issubdtype(images.dtype, np.number) or np.issubdtype(
        images.dtype, np.complexfloating
    ):
        raise DataError(f"{split} images must be uint8 0..255, got {images.dtype}")
    if images.size == 0:
        return images.astype(np.uint8)
    _check_finite(images, f"{split} images", origin)  # NaN defeats the min/max range check
    lo, hi = float(images.min()), float(images.max())
    if np.issubdtype(images.dtype, np.floating) and hi <= 1.0:
        raise DataError(f"{split} images must be uint8 0..255, not floats in [0, 1]")
    if lo < 0 or hi > 255:
        raise DataError(f"{split} image values must lie in 0..255, got {lo:g}..{hi:g}")
    return np.asarray(np.rint(images), dtype=np.uint8)


def _check_finite(values: np.ndarray, what: str, origin: str | None) -> None:
    """One-line DataError counting NaN/inf values (integer arrays are always finite)."""
    if not np.issubdtype(values.dtype, np.floating):
        return
    bad = values.size - int(np.count_nonzero(np.isfinite(values)))
    if bad:
        where = f"{origin}: " if origin else ""
        raise DataError(
            f"{where}{what} contain {bad} non-finite value(s) (NaN or inf) of {values.size}"
        )


def _as_int_labels(labels: np.ndarray, split: str, origin: str | None = None) -> np.ndarray:
    if np.issubdtype(labels.dtype, np.integer):
        return labels.astype(np.int64, copy=False)
    _check_finite(labels, f"{split} labels", origin)
    if np.issubdtype(labels.dtype, np.floating) and np.all(np.mod(labels, 1) == 0):
        return labels.astype(np.int64)
    raise DataError(f"{split} labels must be integer digits 0..9, got {labels.dtype}")


def _stratified_limit(data: DigitsData, limit: int, seed: int) -> DigitsData:
    from sklearn.model_selection import train_test_split

    idx = np.arange(data.train_labels.shape[0])
    try:
        keep, _ = train_test_split(
            idx, train_size=limit, stratify=data.train_labels, random_state=seed
        )
    except ValueError as exc:
        raise DataError(f"cannot keep {limit} stratified training images: {exc}") from None
    keep = np.sort(keep)
    return DigitsData(
        data.train_images[keep],
        data.train_labels[keep],
        data.test_images,
        data.test_labels,
        source=f"{data.source}[train<={limit}]",
    )
