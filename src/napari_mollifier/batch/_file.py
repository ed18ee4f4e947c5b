"""The per-file step of a batch: :func:`infer_file` infers one file and writes its outputs."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from ..config import InferenceSettings
from ..io import InputError, is_table, one_line_error, read_image
from ._result import FileResult
from ._resume import batch_key, completed_result


def infer_file(
    image,
    out,
    *,
    pixel_size_nm=None,
    mask=None,
    input: str | None = "intensity",
    settings: InferenceSettings | None = None,
    cancel: threading.Event | None = None,
    progress: Callable | None = None,
    overview: bool = False,
    skip_existing: bool = False,
    write_cancelled: bool = False,
    check_memory: bool = True,
    on_estimate: Callable | None = None,
    stem: str | None = None,
    labels=None,
    read=None,
) -> FileResult:
    """Infer one file and write its outputs; never raises for a bad input (status "failed").

    The status is the fit's (:attr:`RateFit.status`) when it ran: "ok", or "failed" / "diverged"
    with the fit's reason, its maps written for inspection and marked so in ``S.json``.

    Parameters
    ----------
    image : path
    out : path
        Output folder.
    pixel_size_nm, input, settings
        As for :func:`napari_mollifier.infer_rates`.
    mask : None, path or callable
        None (segment), a path, or a callable ``image -> path`` (e.g. :func:`sibling_mask`).
    cancel : threading.Event, optional
        A fit stopped through it has status "cancelled" and is not written, unless
        ``write_cancelled`` (``mollifier infer`` after Ctrl-C keeps the maps of the step reached).
    progress : callable, optional
        Receives the solver's progress events.
    overview : bool
        Also write ``S_overview.png`` (the other files: :func:`napari_mollifier.io.save_result`).
    skip_existing : bool
        Return status "skipped" without fitting when ``out`` already holds this file's complete
        outputs made with the same resume key (:func:`batch_key`).
    check_memory, on_estimate
        As for :func:`napari_mollifier.infer_rates`: a fit whose memory estimate exceeds what is
        available is refused before it starts (status "failed", nothing written; False: fit
        anyway); ``on_estimate`` receives the estimate (:class:`FitCost`) of a fit that starts.
    stem : str, optional
        The outputs' names, ``{stem}_gamma_me.tif`` ... ``{stem}.json``; default: the image's file
        name without its extension.
    labels : None, "auto", path or callable ``image -> path or None``
        A label image of several nuclei (e.g. :func:`sibling_labels`, None when the file has none):
        each nucleus is fitted on its own (:func:`napari_mollifier.inverse.infer_nuclei`) and
        written by :func:`~napari_mollifier.inverse.write_nuclei_maps`; the result's ``nuclei``
        holds one row per nucleus. "auto" labels every nucleus by automatic segmentation.
    read : ReadOptions, optional
        As for :func:`napari_mollifier.infer_rates`: a stack's plane, a table's units.

    Returns
    -------
    FileResult
    """
    from ..io import resolve_input_kind

    input = resolve_input_kind(image, input)  # None: the kind the file records, else intensity
    from ..inverse import infer_rates
    from ..io import save_result

    stem = stem or Path(image).stem
    if labels is not None:  # several nuclei (when the image has a label image)
        from ._nuclei_file import infer_nuclei_file

        done = infer_nuclei_file(
            image,
            out,
            labels,
            pixel_size_nm=pixel_size_nm,
            input=input,
            settings=settings,
            cancel=cancel,
            progress=progress,
            skip_existing=skip_existing,
            check_memory=check_memory,
        )
        if done is not None:
            return done
    try:
        m = mask_for(image, mask)
        key = batch_key(image, pixel_size_nm=pixel_size_nm, mask=m, input=input, settings=settings, read=read)
        if skip_existing:
            done = completed_result(image, out, key["hash"], overview=overview, stem=stem)
            if done is not None:
                return done
        maps = infer_rates(
            image,
            pixel_size_nm=pixel_size_nm,
            mask=m,
            input=input,
            settings=settings,
            cancel=cancel,
            progress=progress,
            check_memory=check_memory,
            on_estimate=on_estimate,
            read=read,
        )
        cancelled = bool(maps.fit.cancelled)
        if cancelled and not write_cancelled:
            return FileResult(str(image), "cancelled", "stopped before the fit finished; nothing written")
        batch = {"key": key["hash"], "fields": key["fields"]}
        extra = {"batch": batch}
        if cancelled:
            # S.json's "cancelled" stops a later batch from taking these maps as done (resume).
            why = f"stopped by the user at step {maps.fit.steps_done} of {maps.fit.settings.get('steps')}"
            extra.update(status="cancelled", status_reason=f"{why}; the maps are those of that step")
        # Every file of the result (maps, S_rates.csv, the overview, S.json last), as the fit widget's
        # "Save all…" writes them; an earlier S.json goes first, so that new maps beside an old
        # record never pass for that earlier, complete result should this write stop halfway.
        paths = save_result(maps, out, stem=stem, overview=overview, extra=extra)
        # A failed or diverged fit's maps are written too, for inspection; S.json and the row say
        # its status and why (a re-run with skip_existing fits it again).
        status, reason = maps.status, "; ".join(maps.notices)
        if cancelled:
            status, reason = "cancelled", f"{image}: {extra['status_reason']}"
        elif status != "ok":
            reason = "; ".join([f"{image}: {maps.status_reason}", *maps.notices])
        return FileResult(
            str(image),
            status,
            reason,
            outputs={k: str(v) for k, v in paths.items()},
            summary=maps.summary(),
            runtime_s=maps.fit.runtime_s,
            steps_done=maps.fit.steps_done,
            device=maps.fit.device,
            verdict=maps.verdict.verdict,
            verdict_reason=maps.verdict.reason,
        )
    except Exception as exc:  # noqa: BLE001 - one input's failure must not stop the others
        return FileResult(str(image), "failed", one_line_error(exc, image))


def mask_for(image, mask):
    """The mask of ``image``: ``mask`` itself (None or a path) or, for a callable such as
    :func:`sibling_mask`, the path it finds. When it finds none, an image that cannot be read is
    reported with its read error (the real fault), not as lacking a mask.

    Raises
    ------
    InputError
        The image cannot be read, or no mask was found for it; one line naming the file.
    """
    if not callable(mask):
        return mask
    try:
        return mask(image)
    except InputError:
        if not is_table(image):
            read_image(image)  # raises the read error of a damaged, RGB, NaN ... file
        raise
