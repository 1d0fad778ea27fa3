"""Plan execution: safety checks, IK paths and motion backends behind one executor."""
