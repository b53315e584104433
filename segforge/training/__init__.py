"""Training vessel models: topology-aware losses and their skeleton operators.

Why a package of its own: training sits beside the workflows (it uses the shared base and
the vessel workflow's synthetic trees), and nothing below it may depend on torch autograd
code. Import the pieces from their modules (:mod:`.losses`, :mod:`.skeleton`,
:mod:`.thinning`); this file stays empty so importing one does not load the others.
"""
