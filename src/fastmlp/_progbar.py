"""``Progbar``: Keras 3's progress bar (``fastmlp.utils.Progbar``).

On a terminal, or in a notebook, ``verbose=1`` redraws one line with ``\\r``
(at most every ``interval`` seconds), in Keras's colours.  Elsewhere (a pipe, a
log file) it writes the finished line only, without colour codes: one line per
bar, where Keras 3 on POSIX would write every redraw into the file.
``verbose=2`` writes the finished line only, as Keras does.
"""
import math
import os
import sys
import time

import numpy as np

__all__ = ["Progbar"]

_BOLD, _GREEN, _GREY, _RESET = "\x1b[1m", "\x1b[32m", "\x1b[37m", "\x1b[0m"


def _dynamic(stream):
    """Whether ``stream`` shows a redrawn line: a terminal, or a notebook's output."""
    try:
        if stream.isatty():
            return True
    except (AttributeError, ValueError):
        pass
    return "ipykernel" in sys.modules or "PYCHARM_HOSTED" in os.environ


def _format_time(seconds, unit_name):
    if seconds >= 1 or seconds == 0:
        return f" {seconds:.0f}s/{unit_name}"
    if seconds >= 1e-3:
        return f" {seconds * 1e3:.0f}ms/{unit_name}"
    return f" {seconds * 1e6:.0f}us/{unit_name}"


class Progbar:
    """A progress bar, as ``keras.utils.Progbar``.

    Parameters
    ----------
    target : int or None
        Total number of steps expected; None if unknown.
    width : int
        The bar's width in characters.
    verbose : int
        0 (silent), 1 (a bar) or 2 (the finished line only).
    interval : float
        Minimum seconds between two redraws.
    stateful_metrics : iterable of str, optional
        Values shown as given; every other value is averaged over the steps.
    stateless_metrics : iterable of str, optional
        The other way round (Keras 3): only these are averaged.
    unit_name : str
        The unit of the time per step (``"step"``, ``"sample"``...).
    stream : file-like, optional
        Where to write (fastmlp's addition); ``sys.stdout`` when None.
    """

    def __init__(self, target, width=20, verbose=1, interval=0.05, stateful_metrics=None,
                 stateless_metrics=None, unit_name="step", *, stream=None):
        if stateful_metrics is not None and stateless_metrics is not None:
            raise ValueError("Only one of `stateful_metrics` or `stateless_metrics` can be provided.")
        if target is not None and (isinstance(target, bool) or not isinstance(target, (int, np.integer))
                                   or target < 0):
            raise ValueError(f"`target` must be a non-negative integer or None. Received: target={target!r}")
        if isinstance(width, bool) or not isinstance(width, (int, np.integer)) or width < 1:
            raise ValueError(f"`width` must be a positive integer. Received: width={width!r}")
        if verbose not in (0, 1, 2):
            raise ValueError(f"`verbose` must be 0, 1 or 2. Received: verbose={verbose!r}")
        if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not interval >= 0:
            raise ValueError(f"`interval` must be a non-negative number. Received: interval={interval!r}")
        self.target = None if target is None else int(target)
        self.width = int(width)
        self.verbose = verbose
        self.interval = float(interval)
        self.unit_name = unit_name
        self.stream = stream
        if stateful_metrics is not None:
            self.stateful_metrics, self.stateless_metrics = set(stateful_metrics), None
        elif stateless_metrics is not None:
            self.stateful_metrics, self.stateless_metrics = None, set(stateless_metrics)
        else:
            self.stateful_metrics, self.stateless_metrics = set(), None
        self._dynamic_display = _dynamic(self._out())
        self._seen_so_far = 0
        self._values = {}
        self._values_order = []
        self._start = time.time()
        self._last_update = 0.0
        self._time_after_first_step = None
        self._prev_total_width = 0

    def _out(self):
        return self.stream if self.stream is not None else sys.stdout

    def _averaged(self, name):
        if self.stateful_metrics is not None:
            return name not in self.stateful_metrics
        return name in self.stateless_metrics

    def update(self, current, values=None, finalize=None):
        """Move the bar to step ``current``.

        ``values``: ``(name, value)`` pairs for the last step(s); averaged over
        the steps unless the name is stateful.  ``finalize`` (default: ``current
        >= target``) draws the finished line."""
        if finalize is None:
            finalize = False if self.target is None else current >= self.target
        for name, value in values or []:
            if name not in self._values_order:
                self._values_order.append(name)
            if self._averaged(name) and not finalize:
                steps = max(current - self._seen_so_far, 1)
                total = self._values.setdefault(name, [0.0, 0])
                total[0] += value * steps
                total[1] += steps
            else:
                self._values[name] = [value, 1]
        self._seen_so_far = current
        now = time.time()
        per_step = self._step_duration(current, now)
        if self.verbose == 1:
            if not finalize and (now - self._last_update < self.interval or not self._dynamic_display):
                return
            self._write(self._line(current, now, per_step, finalize))
        elif self.verbose == 2 and finalize and self.target:
            digits = int(math.log10(self.target)) + 1
            info = f"{current:{digits}d}/{self.target} - {now - self._start:.0f}s -"
            info += _format_time(per_step, self.unit_name)
            for name in self._values_order:
                total, count = self._values[name]
                avg = np.mean(total) / max(1, count)
                info += f" - {name}: {avg:.4f}" if avg > 1e-3 else f" - {name}: {avg:.4e}"
            self._write(info + "\n")
        self._last_update = now

    def add(self, n, values=None):
        """Advance the bar by ``n`` steps."""
        self.update(self._seen_so_far + n, values)

    def _line(self, current, now, per_step, finalize):
        color = self._dynamic_display

        def paint(code, text):
            return f"{code}{text}{_RESET}" if color else text
        if self.target:
            digits = int(math.log10(self.target)) + 1
            bar = paint(_BOLD, f"{current:{digits}d}/{self.target}") + " "
            done = min(int(self.width * current / self.target), self.width)
            if done > 0:
                bar += paint(_GREEN, "\u2501" * done)
            bar += paint(_GREY, "\u2501" * (self.width - done))
        else:
            bar = f"{current:7d}/Unknown"
        if self.target and not finalize:
            eta = per_step * (self.target - current)
            eta = int(eta)
            if eta > 3600:
                text = f"{eta // 3600}:{eta % 3600 // 60:02d}:{eta % 60:02d}"
            elif eta > 60:
                text = f"{eta // 60}:{eta % 60:02d}"
            else:
                text = f"{eta}s"
            info = " " + paint(_BOLD, text)
        else:
            info = " " + paint(_BOLD, f"{now - self._start:.0f}s")
        info += _format_time(per_step, self.unit_name)
        for name in self._values_order:
            total, count = self._values[name]
            avg = np.mean(total) / max(1, count)
            info += f" - {name}: {avg:.4f}" if abs(avg) > 1e-3 else f" - {name}: {avg:.4e}"
        line = bar + info
        if not color:
            return line + "\n"
        width = len(line) - sum(len(c) for c in (_BOLD, _GREEN, _GREY, _RESET) for _ in range(line.count(c)))
        message = "\r" + line
        if self._prev_total_width > width:
            message += " " * (self._prev_total_width - width)
        self._prev_total_width = width
        return message + ("\n" if finalize else "")

    def _write(self, message):
        out = self._out()
        try:
            out.write(message)
        except UnicodeEncodeError:   # a stream that cannot encode the bar's character
            out.write(message.replace("\u2501", "="))
        out.flush()

    def _step_duration(self, current, now):
        """Seconds per step, leaving out the first step (compilation, warm-up) once there are more."""
        if not current:
            return 0
        if self._time_after_first_step is not None and current > 1:
            per_step = (now - self._time_after_first_step) / (current - 1)
        else:
            per_step = (now - self._start) / current
        if current == 1:
            self._time_after_first_step = now
        return per_step
