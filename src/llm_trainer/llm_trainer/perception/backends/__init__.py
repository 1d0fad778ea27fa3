"""Perception backends by stage: classical ones (OpenCV, run anywhere) and model ones (Molmo, SAM,
OWLv2 through transformers; M2T2 where installed)."""
