"""The app's screens: rig, plan, run, and the dialogs over them."""
