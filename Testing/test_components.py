"""segforge.components.label gives scipy's components (same partition, same count, same raster
numbering) for each connectivity, on masks where 6, 18 and 26 neighbours give different answers."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from segforge.components import label

STRUCTURES = {6: ndimage.generate_binary_structure(3, 1), 18: ndimage.generate_binary_structure(3, 2),
              26: ndimage.generate_binary_structure(3, 3)}


@pytest.mark.parametrize("connectivity", [6, 18, 26])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_same_components_as_scipy(connectivity, seed):
    volume = np.random.default_rng(seed).random((23, 17, 29)) < 0.3
    ours, count = label(volume, connectivity)
    theirs, expected = ndimage.label(volume, STRUCTURES[connectivity])
    assert count == expected
    np.testing.assert_array_equal(ours, theirs)


def test_connectivities_differ_where_they_should():
    volume = np.zeros((3, 3, 3), bool)
    volume[0, 0, 0] = volume[1, 1, 0] = volume[2, 2, 1] = True  # an edge neighbour, then a corner one
    assert [label(volume, c)[1] for c in (6, 18, 26)] == [3, 2, 1]


def test_unknown_connectivity_refused():
    with pytest.raises(ValueError, match="connectivity 8"):
        label(np.ones((2, 2, 2), bool), 8)

