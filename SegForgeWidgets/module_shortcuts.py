"""ModuleShortcuts: a module panel's keys, bound on the main window only while the module is entered.

Why only between enter() and exit(): a key bound by two enabled shortcuts of one window is
ambiguous to Qt, which then fires neither (activatedAmbiguously(); a QAction logs "Ambiguous
shortcut overload"). Slicer's Segment Editor binds z/y and the platform's Undo/Redo keys the
same way, as QShortcuts on the main window (default Qt::WindowShortcut context) created in
SegmentEditor.enter() and deleted in exit() (qMRMLSegmentEditorWidget::installKeyboardShortcuts
/ uninstallKeyboardShortcuts); one module is entered at a time, so the two never coexist, even
when a module opens the Segment Editor (SegInteractive's Paint scribble). The main window's
Edit > Undo action (Ctrl+Z) is in no menu or toolbar, so Qt never matches it. A focused line
edit keeps Ctrl+Z and single letters for itself. Left: an extension that keeps a key bound
outside enter/exit; that is reported (logged, and told to ``onAmbiguous``), not silent.
"""
import logging

import qt

import slicer


class ModuleShortcuts:
    """``bindings``: (keys, slot) pairs such as ("Ctrl+Z", self.onUndo), bound by :meth:`install`
    (the widget's enter()) and let go by :meth:`remove` (exit() and cleanup()).
    ``onAmbiguous(keys)`` hears of a key another shortcut also binds, so that the panel can say so."""

    def __init__(self, moduleName: str, bindings, onAmbiguous=None) -> None:
        self._moduleName = moduleName
        self._bindings = tuple(bindings)
        self._onAmbiguous = onAmbiguous or (lambda keys: None)
        self._shortcuts = []

    def install(self) -> None:
        """Bind the keys on the main window; a second call keeps the first binding."""
        if self._shortcuts:
            return
        for keys, slot in self._bindings:
            shortcut = qt.QShortcut(slicer.util.mainWindow())
            shortcut.setKey(qt.QKeySequence(keys))
            shortcut.setContext(qt.Qt.WindowShortcut)
            shortcut.connect("activated()", slot)
            shortcut.connect("activatedAmbiguously()", lambda keys=keys: self._ambiguous(keys))
            self._shortcuts.append(shortcut)

    def remove(self) -> None:
        """Delete the keys, so that another module may bind them."""
        for shortcut in self._shortcuts:
            shortcut.setEnabled(False)
            shortcut.disconnect("activated()")
            shortcut.disconnect("activatedAmbiguously()")
            shortcut.setParent(None)  # owned by Python now: deleted with its wrapper (no deleteLater, no double delete)
        self._shortcuts = []

    def _ambiguous(self, keys: str) -> None:
        logging.warning("%s: %s is also a shortcut of another module; Qt runs neither", self._moduleName, keys)
        self._onAmbiguous(keys)
