"""PyAV / NumPy / Pillow helpers shared by the backends."""
