"""OCR pipeline pieces on top of the runtime: detection post-processing (xnn.ocr.detect), ..."""
