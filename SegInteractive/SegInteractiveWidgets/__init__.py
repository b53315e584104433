"""SegInteractive's Qt/MRML helpers of the desktop panel (the Qt-free rules live in SegInteractiveLib)."""
