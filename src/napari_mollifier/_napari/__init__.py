"""The napari plugin: readers, writer, sample data (Qt-free) and the widgets (Qt).

Nothing here is imported by ``import napari_mollifier``; napari loads each module lazily
through the npe2 manifest (napari.yaml). Modules without ``_widget`` / ``_qt`` in their name
import neither napari nor Qt, so they are testable without a display.
"""
