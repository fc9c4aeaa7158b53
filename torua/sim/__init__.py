"""The seam between Torua's processes and the outside world.

Everything a process takes from outside itself (connections, listening
sockets, the wall clock, randomness) goes through :func:`current`, which
answers the real thing unless a deterministic simulator has installed a
simulated host for the running task (see ``docs/simulation.md``).
"""

from torua.sim.seam import Host, SimulatedListener, SimulatedStream, current, installed

__all__ = ["Host", "SimulatedListener", "SimulatedStream", "current", "installed"]
