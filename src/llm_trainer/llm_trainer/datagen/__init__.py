"""Data generation: reset -> plan -> execute -> verify -> record, in process or through the node graph."""
