"""OCR on the xnn runtime: `Reader(app).read(image)` detects text lines, rectifies and recognizes
them and returns validated fields (xnn.ocr.apps); multi-frame fusion (xnn.ocr.fusion), capture
quality hints (xnn.ocr.quality), domain rules for the constrained CTC search (xnn.ocr.rules),
detector post-processing (xnn.ocr.detect) and line geometry (xnn.ocr.geometry)."""
from .apps import APPS, Field, LineRead, OcrResult, Reader  # noqa: F401
from .fusion import FrameFusion, read_frames  # noqa: F401

__all__ = ["APPS", "Field", "FrameFusion", "LineRead", "OcrResult", "Reader", "read", "read_frames"]

_readers: dict = {}


def read(image, app: str = "text", **kw):
    """Read one image with a cached Reader(app, **kw)."""
    key = (app, tuple(sorted(kw.items())))
    if key not in _readers:
        _readers[key] = Reader(app, **kw)
    return _readers[key].read(image)
