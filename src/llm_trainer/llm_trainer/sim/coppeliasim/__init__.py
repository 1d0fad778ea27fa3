"""CoppeliaSim behind the simulator interface, over its ZeroMQ remote API (protocol version 2, CoppeliaSim 4.6+).

``remote_api``: a small client of our own for the wire protocol (CBOR maps over a ZMQ REQ socket);
``adaptor``: ``CoppeliaSimulation``, the ``llm_trainer.sim.base.Simulator`` that drives a scene through it.
The official ``coppeliasim-zmqremoteapi-client`` speaks the same protocol and can be passed in instead.
"""
