"""ONNX Runtime inference: sessions, windowed tiling with blending, 1 m products."""
