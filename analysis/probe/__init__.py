"""Linear probes of a pretrained backbone's frozen per-point features (`python -m analysis.probe RUN_DIR`)."""
