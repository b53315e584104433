"""Training vessel models: topology-aware losses, their skeleton operators, synthetic data,
the training loop and the export of a trained network as a catalog model.

Why a package of its own: training sits beside the workflows (it uses the shared base and
the vessel workflow's synthetic trees and conventions), and nothing the workflows run at
inference needs it. Import the pieces from their modules (:mod:`.losses`, :mod:`.skeleton`,
:mod:`.thinning`, :mod:`.synthetic_data`, :mod:`.train`, :mod:`.export`); this file stays
empty so that importing a loss does not load MONAI.
"""
