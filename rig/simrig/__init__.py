"""The simulated rig: a scene with known depth, rendered for any focus position."""
