"""fastmlp's kernel threads as a ``threadpoolctl`` library, so that
``threadpool_limits`` (which scikit-learn, joblib and Dask workers use to keep
``n_jobs`` processes from oversubscribing the cores) limits them too::

    from threadpoolctl import threadpool_limits
    with threadpool_limits(limits=1, user_api="fastmlp"):
        model.fit(x, y)

Registered on import of ``fastmlp.sklearn`` and ``fastmlp.dask``, or by
``register()``; threadpoolctl itself is optional.
"""
import ctypes

_REGISTERED = False


def _controller_class():
    import threadpoolctl

    class FastmlpController(threadpoolctl.LibController):
        user_api = "fastmlp"
        internal_api = "fastmlp"
        filename_prefixes = ("_engine",)

        def _symbol(self, name):
            # another package's "_engine" library lacks fastmlp's symbols: report nothing for it
            return getattr(self.dynlib, name, None) if "fastmlp" in (self.filepath or "") else None

        def get_num_threads(self):
            fn = self._symbol("fm_get_num_threads")
            if fn is None:
                return None
            fn.restype = ctypes.c_int
            return int(fn())

        def set_num_threads(self, num_threads):
            fn = self._symbol("fm_set_num_threads")
            if fn is not None:
                fn.argtypes = [ctypes.c_int]
                fn(int(num_threads))

        def get_version(self):
            from . import __version__
            return __version__

    return FastmlpController


def register():
    """Make threadpoolctl see fastmlp's kernels (a no-op without threadpoolctl); returns whether it did."""
    global _REGISTERED
    if _REGISTERED:
        return True
    try:
        import threadpoolctl
    except ImportError:
        return False
    if not hasattr(threadpoolctl, "register"):   # threadpoolctl < 3.2
        return False
    threadpoolctl.register(_controller_class())
    _REGISTERED = True
    return True
