"""ContainerBuilder -> InitBuilder -> Container, after youki's libcontainer.

    c = ContainerBuilder("web", root="/run/kago").as_init("/srv/bundle").build()
    c.start()

    c = ContainerBuilder("web").as_restore("/srv/bundle", image_path="/srv/ckpt").build()
"""

from kago.container.state import DEFAULT_ROOT, validate_id


class ContainerBuilder:
    """Names a container and its state root; choose what to build next."""

    def __init__(self, id: str, root: str = DEFAULT_ROOT, systemd_cgroup: bool = False,
                 rootless="auto"):
        """``rootless``: the global ``--rootless`` (``"auto"``, ``"true"``,
        ``"false"`` or a bool; :func:`kago.userns.rootless_cgroups`): may
        the container go without a cgroup of its own where the caller can't
        make one?"""
        validate_id(id)
        self.id = id
        self.root = root
        self.systemd_cgroup = systemd_cgroup
        self.rootless = rootless

    def as_init(self, bundle: str, *, pid_file=None, console_socket=None,
                no_pivot=False, no_new_keyring=False, preserve_fds=0,
                detach=True, notify_socket=None) -> "InitBuilder":
        """A new container from the OCI bundle at ``bundle``.

        ``detach=False`` makes this process the container's reaper
        (PR_SET_CHILD_SUBREAPER, which stays set after a successful build, as
        for ``kago run``) so that :meth:`Container.wait` can collect its exit
        status; ``wait`` reaps only the container's init.

        ``notify_socket`` (what ``NOTIFY_SOCKET`` is for the command) gives the
        container an sd_notify socket of its own; :meth:`Container.start` with
        the same value passes its ``READY=`` on (see :mod:`kago.notify`)."""
        return InitBuilder(self, bundle, pid_file=pid_file,
                           console_socket=console_socket, no_pivot=no_pivot,
                           no_new_keyring=no_new_keyring, preserve_fds=preserve_fds,
                           detach=detach, notify_socket=notify_socket)


    def as_restore(self, bundle: str, *, image_path=None, **options) -> "RestoreBuilder":
        """A container restored with CRIU from the image in ``image_path``
        (default ``./checkpoint``), with the bundle's config.json; ``options``
        are runc's restore flags (:class:`kago.container.restore.RestoreOptions`:
        ``detach`` (default True), ``console_socket``, ``pid_file``,
        ``tcp_established``, ...).  ``build()`` returns it running."""
        return RestoreBuilder(self, bundle, image_path=image_path, **options)


class RestoreBuilder:
    def __init__(self, parent, bundle, **opts):
        self.parent = parent
        self.bundle = bundle
        self.opts = opts

    def build(self):
        from kago.container.restore import RestoreOptions, restore
        p = self.parent
        return restore(p.root, p.id, self.bundle, RestoreOptions(**self.opts),
                       systemd_cgroup=p.systemd_cgroup)


class InitBuilder:
    def __init__(self, parent, bundle, **opts):
        self.parent = parent
        self.bundle = bundle
        self.opts = opts

    def build(self):
        """Create the container: it is ``created``, its init waiting for start."""
        from kago.container.create import create
        p = self.parent
        return create(p.root, p.id, self.bundle, systemd_cgroup=p.systemd_cgroup,
                      rootless=p.rootless, **self.opts)
