"""SegInteractive's self-test (Qt: it runs inside Slicer), kept out of the module file."""
