"""Hardware behind small protocols: cameras and focus drives."""
