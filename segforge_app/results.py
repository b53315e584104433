"""What the module panels share: their results made visible (segments in 2D and 3D, models and
curves in 3D, table rows in the panel) and the Replace / Keep both question.

A result is a set of scene nodes the module Logic wrote; the panels put a light copy of what
the user reads (segment names and colours, table rows) into the state, and make the nodes
visible in the views as Slicer does after a module's Apply: segments filled in the slice
views and as closed surfaces in 3D, models and curves in 3D.
"""
from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any, Callable, Iterable, Optional

if TYPE_CHECKING:
    from .context import AppContext

logger = logging.getLogger(__name__)

#: Rows of a table sent to the browser at most (the table node keeps all; a saved CSV has all).
MAX_TABLE_ROWS = 1000


# -- the scene side --------------------------------------------------------------------------------

def show_segmentation(segmentation_node: Any, in_3d: bool = True) -> None:
    """Show a segmentation's segments filled in the slice views and, with ``in_3d``, as surfaces in 3D."""
    if segmentation_node is None:
        return
    if segmentation_node.GetDisplayNode() is None:
        segmentation_node.CreateDefaultDisplayNodes()
    display = segmentation_node.GetDisplayNode()
    display.SetVisibility(True)
    display.SetVisibility2DFill(True)
    display.SetVisibility2DOutline(True)
    if in_3d:
        if not segmentation_node.CreateClosedSurfaceRepresentation():
            logger.warning("no closed surface for %s: it is shown in the slice views only",
                           segmentation_node.GetName())
        display.SetPreferredDisplayRepresentationName3D("Closed surface")
        display.SetVisibility3D(True)


def show_in_3d(nodes: Iterable[Any], in_slices: bool = False) -> None:
    """Make models, curves and point lists visible in 3D (in the slice views too with ``in_slices``:
    hundreds of curves and a surface's outline over the segment's fill hide the image there)."""
    for node in nodes:
        if node is None:
            continue
        if node.GetDisplayNode() is None:
            node.CreateDefaultDisplayNodes()
        display = node.GetDisplayNode()
        if display is None:
            continue
        display.SetVisibility(True)
        display.SetVisibility3D(True)
        display.SetVisibility2D(in_slices)


def render_views(context: "AppContext", fit_3d: bool = True) -> None:
    """Ask every view for a new frame (the result is in the scene; the page should show it now);
    with ``fit_3d`` the 3D views' cameras frame everything they show, as after loading."""
    for view in context.slicer_app.view_manager.get_threed_views():
        if fit_3d:
            view.reset_camera()
    for view in context.slicer_app.view_manager.get_views():
        view.schedule_render()


def segment_rows(segmentation_node: Any) -> list[dict]:
    """``[{"id", "name", "color"}]`` of a segmentation's segments, colour as ``#rrggbb``."""
    if segmentation_node is None:
        return []
    segmentation = segmentation_node.GetSegmentation()
    rows = []
    for index in range(segmentation.GetNumberOfSegments()):
        segment = segmentation.GetNthSegment(index)
        red, green, blue = (max(0, min(255, round(255 * c))) for c in segment.GetColor())
        rows.append({"id": segmentation.GetNthSegmentID(index), "name": segment.GetName(),
                     "color": f"#{red:02x}{green:02x}{blue:02x}"})
    return rows


def table_rows(table_node: Any, max_rows: int = MAX_TABLE_ROWS) -> tuple[list[dict], list[dict], int]:
    """``(headers, rows, total)`` of a table node for a VDataTable (at most ``max_rows`` rows).

    Keys are ``c0``, ``c1``... since Vuetify reads dots and brackets in a key ("Volume [mL]")
    as a path; the column's name is the header's title.
    """
    if table_node is None:
        return [], [], 0
    table = table_node.GetTable()
    columns = table.GetNumberOfColumns()
    total = table.GetNumberOfRows()
    headers = [{"title": table.GetColumnName(c) or f"column {c + 1}", "key": f"c{c}"} for c in range(columns)]
    rows = []
    for r in range(min(total, max_rows)):
        rows.append({f"c{c}": _cell(table.GetValue(r, c)) for c in range(columns)})
    return headers, rows, total


def _cell(value: Any) -> Any:
    """A table cell as the browser shows it: numbers rounded to 3 decimals, everything else as text."""
    try:
        if value.IsNumeric():
            number = value.ToDouble()
            if not math.isfinite(number):  # e.g. a root branch's parent: shown empty, as Slicer does
                return ""
            return int(number) if number.is_integer() else round(number, 3)
    except AttributeError:  # a plain Python value
        pass
    return value.ToString() if hasattr(value, "ToString") else str(value)


# -- the page side ----------------------------------------------------------------------------------

def segments_list(state_key: str, test_id: str) -> None:
    """The segments of ``state_key`` (``segment_rows``): a colour swatch and the name each."""
    from trame.widgets import html, vuetify3 as v3

    with v3.VList(v_if=(f"{state_key} && {state_key}.length",), density="compact", classes="py-0",
                  raw_attrs=[f'data-testid="{test_id}"']):
        with v3.VListItem(v_for=f"segment in {state_key}", key="segment.id", classes="px-1"):
            with html.Div(classes="d-flex align-center"):
                html.Span(classes="mr-2", style=("{display: 'inline-block', width: '14px', height: '14px',"
                                                 " borderRadius: '3px', background: segment.color}",))
                html.Span("{{ segment.name }}", classes="segment-name")


def rows_table(state_key: str, test_id: str, title: str) -> None:
    """A compact, paged VDataTable of ``<state_key>`` = ``{"headers", "rows", "total"}``."""
    from trame.widgets import html, vuetify3 as v3

    with html.Div(v_if=(f"{state_key} && {state_key}.total",), classes="mt-2"):
        html.Div(f"{title} ({{{{ {state_key}.total }}}} rows"
                 f"{{{{ {state_key}.total > {state_key}.rows.length ? ', first ' + {state_key}.rows.length"
                 f" + ' shown' : '' }}}})", classes="text-caption")
        v3.VDataTable(headers=(f"{state_key}.headers",), items=(f"{state_key}.rows",), density="compact",
                      items_per_page=5, hover=True, style="font-size: 0.75rem;",
                      raw_attrs=[f'data-testid="{test_id}"'])


def table_state(table_node: Any) -> Optional[dict]:
    """The state value :func:`rows_table` shows; None without a table."""
    if table_node is None:
        return None
    headers, rows, total = table_rows(table_node)
    return {"name": table_node.GetName(), "headers": headers, "rows": rows, "total": total}


def existing_dialog(key: str, on_answer: Callable[[str], None]) -> None:
    """The Replace / Keep both / Cancel question, open while state ``<key>_ask`` holds its text.

    ``on_answer`` gets "replace", "rename" (keep both: the new segments get other names) or "cancel".
    """
    from trame.widgets import vuetify3 as v3

    ask = f"{key}_ask"
    with v3.VDialog(model_value=(f"!!{ask}",), persistent=True, max_width=460):
        with v3.VCard(raw_attrs=[f'data-testid="{key}-existing-dialog"']):
            v3.VCardTitle("Segments of these names exist")
            v3.VCardText(f"{{{{ {ask} }}}} Replace them with the new result, or keep both (the new "
                         "segments get other names)? Segments of other names are left alone either way.")
            with v3.VCardActions():
                v3.VSpacer()
                for label, answer, test_id in (("Replace", "replace", "replace"), ("Keep both", "rename", "keep-both"),
                                               ("Cancel", "cancel", "existing-cancel")):
                    v3.VBtn(label, click=(on_answer, f"['{answer}']"),
                            raw_attrs=[f'data-testid="{key}-{test_id}"'])


# -- the input volume -------------------------------------------------------------------------------

def shown_volume_id(context: "AppContext") -> Optional[str]:
    """The volume in the axial view's background (the one the user looks at), if any."""
    composite = context.scene.GetNodeByID("vtkMRMLSliceCompositeNodeRed")
    if composite is None:
        composites = context.scene.GetNodesByClass("vtkMRMLSliceCompositeNode")
        composite = composites.GetItemAsObject(0) if composites.GetNumberOfItems() else None
    return composite.GetBackgroundVolumeID() if composite is not None else None


def follow_input_volume(context: "AppContext", key: str) -> None:
    """Keep state ``key`` on a listed volume: the user's choice while it exists, else the shown one, else the first."""
    from .context import NODES_KEY

    def pick(**_: Any) -> None:
        volumes = [node["id"] for node in context.state[NODES_KEY] if node["kind"] == "volume"]
        if context.state[key] in volumes:
            return
        shown = shown_volume_id(context)
        context.state[key] = shown if shown in volumes else (volumes[0] if volumes else None)

    context.state.setdefault(key, None)
    context.state.change(NODES_KEY)(pick)
    pick()


def node_of(context: "AppContext", node_id: Optional[str], class_name: str) -> Any:
    """The scene node ``node_id`` when it is a ``class_name``; None otherwise."""
    node = context.scene.GetNodeByID(node_id) if node_id else None
    return node if node is not None and node.IsA(class_name) else None


def volume_select(key: str, test_id: str, label: str) -> None:
    """A select over the scene's volumes (state ``scene_nodes``), bound to state ``key``."""
    from trame.widgets import vuetify3 as v3

    v3.VSelect(v_model=(key,), items=("scene_nodes.filter(n => n.kind === 'volume')",), item_title="name",
               item_value="id", label=label, density="compact", hide_details="auto", persistent_hint=True,
               hint=(f"{key} ? '' : 'no volume: load one in the Data panel'",), no_data_text="no volume loaded",
               classes="mb-2",
               raw_attrs=[f'data-testid="{test_id}"'])


def output_select(key: str, test_id: str) -> None:
    """Where results go: a new segmentation (value "") or one of the scene's segmentations."""
    from trame.widgets import vuetify3 as v3

    v3.VSelect(v_model=(key, ""), label="Output segmentation", density="compact", hide_details="auto",
               items=("[{title: 'New segmentation', value: ''}].concat(scene_nodes"
                      ".filter(n => n.kind === 'segmentation').map(n => ({title: n.name, value: n.id})))",),
               classes="mb-2", raw_attrs=[f'data-testid="{test_id}"'])
