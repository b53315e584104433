"""The views' place mode: clicks in a slice or 3D view put control points into a markups node.

Slicer keeps one place mode for the whole application (the selection node names the node that
receives the points, the interaction node says whether clicks place or rotate), so a panel that
lets the user click prompts or seeds in the views enters it, asks whether it is still in it
(the user may leave it from the toolbar), and leaves it.
"""
import slicer


def enterPlaceMode(markupsNode, persistent: bool) -> None:
    """Let clicks in the views place control points into ``markupsNode`` (one, or until stopped)."""
    selectionNode = slicer.app.applicationLogic().GetSelectionNode()
    selectionNode.SetReferenceActivePlaceNodeClassName(markupsNode.GetClassName())
    selectionNode.SetActivePlaceNodeID(markupsNode.GetID())
    interactionNode = slicer.app.applicationLogic().GetInteractionNode()
    interactionNode.SetPlaceModePersistence(1 if persistent else 0)
    interactionNode.SetCurrentInteractionMode(interactionNode.Place)


def placingInto(*markupsNodes) -> bool:
    """Whether clicks in the views place points into one of ``markupsNodes`` now."""
    interactionNode = slicer.app.applicationLogic().GetInteractionNode()
    activeId = slicer.app.applicationLogic().GetSelectionNode().GetActivePlaceNodeID()
    return (interactionNode.GetCurrentInteractionMode() == interactionNode.Place
            and activeId in [node.GetID() for node in markupsNodes])


def leavePlaceMode() -> None:
    """Clicks in the views rotate and pan again."""
    interactionNode = slicer.app.applicationLogic().GetInteractionNode()
    interactionNode.SetCurrentInteractionMode(interactionNode.ViewTransform)
