"""Engines end to end for bench/bench.py (`--engines`): podman, ctr, a CRI pod
and container, docker, each pointed at every runtime of the run by path.

The engines are started as tests/engines/conftest.py starts them (its classes
are reused: every daemon's state under one temporary folder, the cgroupfs
driver, the host's rlimits): one engine instance per runtime, so each runtime
is its engine's default and nothing is shared between them but the host.
Needs the Python that runs the engine suite (pytest, and grpcio for CRI):
bench/run.sh picks ${KAGO_PREFIX:-/opt/kago}/venv/bin/python for --engines.

Timed, per round and runtime (wall, from the harness):
- podman:  `podman run --rm --network none IMAGE true`
- ctr:     `ctr run --rm IMAGE ID true`
- cri:     RunPodSandbox + CreateContainer(true) + StartContainer, ContainerStatus
           until it exited, then StopContainer, RemoveContainer, StopPodSandbox,
           RemovePodSandbox (gRPC calls made in this process, as kubelet makes them)
- docker:  `docker run --rm --network none IMAGE true`
"""

import importlib.util
import os
import shutil
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
CONFTEST = os.path.join(os.path.dirname(HERE), "tests", "engines", "conftest.py")


def load_conftest():
    spec = importlib.util.spec_from_file_location("kago_engines_conftest", CONFTEST)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class Engines:
    """Start the engines named in WHICH for each runtime; .measures maps a
    bench measure name to fn(rt) -> ({label: Sample}, {})."""

    def __init__(self, bench, mod, say):
        self.b, self.bm, self.say = bench, mod, say
        self.cf = cf = load_conftest()
        import pytest
        self.skip = (pytest.skip.Exception, pytest.fail.Exception)
        self.tag = mod.PREFIX                 # cgroup parents kago-eng-<PREFIX>-*: bench cleans them
        self.base = tempfile.mkdtemp(prefix="kbe-", dir="/tmp")   # short: socket paths
        self.fresh = [p for p in cf.HOST_DIRS if not os.path.lexists(p)]
        self.objs = []                        # things to close, in reverse
        self.per = {}                         # engine -> rt.name -> handle
        self.measures = {}

    def start_all(self, which):
        cf, bench, say = self.cf, self.b, self.say
        rootfs = os.path.join(self.base, "bundle")
        cf.run(["bash", os.path.join(os.path.dirname(HERE), "scripts", "mkbundle.sh"),
                "--no-config", rootfs])
        self.archive = cf.write_docker_archive(
            cf.Path(rootfs) / "rootfs", cf.Path(self.base) / "images.tar",
            {cf.IMAGE: ["sh"], cf.PAUSE_IMAGE: cf.LOOP})
        for eng in which:
            self.per[eng] = {}
            for rt in bench.rts:
                try:
                    self.per[eng][rt.name] = self.start(eng, rt)
                except (Exception,) + self.skip as e:          # noqa: BLE001 - reported as n/a
                    why = "%s did not start for %s: %s" % (eng, rt.name, str(e).strip()[:300])
                    say("bench: " + why)
                    bench.failed[(eng, rt.name)] = why
            self.measures[eng] = getattr(self, "m_" + eng)

    # ---- start-up, one engine instance per runtime
    def rtobj(self, rt):
        if len(rt.argv) > 1:
            raise ValueError("an engine needs the runtime as one executable, not %r" % rt.argv)
        # the engine suite's Runtime: podman decides JSON logging by this name
        return self.cf.Runtime(rt.kind, rt.argv[0], rt.argv[0])

    def rtbase(self, rt):
        d = self.cf.Path(self.base) / rt.name.replace("/", "_")
        d.mkdir(exist_ok=True)
        return d

    def containerd(self, rt):
        cd = self.per.setdefault("_containerd", {}).get(rt.name)
        if cd is None:
            cd = self.cf.Containerd(self.rtbase(rt), self.rtobj(rt), self.tag)
            self.objs.append(cd)
            self.per["_containerd"][rt.name] = cd
        return cd

    def start(self, eng, rt):
        cf = self.cf
        if eng == "podman":
            cf._need("podman", "conmon")
            pm = cf.Podman(self.rtbase(rt), self.rtobj(rt), self.tag)
            self.objs.append(pm)
            pm("load", "-i", self.archive, timeout=120)
            pm.exe = shutil.which("podman")
            return pm
        if eng == "ctr":
            cf._need("containerd", "ctr", "containerd-shim-runc-v2")
            c = cf.Ctr(self.containerd(rt), self.archive)
            c.exe = shutil.which("ctr")
            return c
        if eng == "cri":
            cf._need("containerd", "ctr", "containerd-shim-runc-v2")
            c = cf.Cri(self.containerd(rt), self.rtbase(rt), self.archive)
            self.objs.append(c)
            return c
        if eng == "docker":
            cf._need("dockerd")
            dk = cf.Docker(self.rtbase(rt), self.rtobj(rt), self.containerd(rt), self.tag)
            self.objs.append(dk)
            dk("load", "-i", self.archive, timeout=120)
            return dk
        raise ValueError("unknown engine %s" % eng)

    # ---- measures
    def handle(self, eng, rt):
        h = self.per.get(eng, {}).get(rt.name)
        if h is None:
            raise self.bm.CallFailed(self.b.failed.get((eng, rt.name), "%s not started" % eng))
        return h

    def timed(self, what, argv, env=None):
        rc, s, err = self.bm.spawn(argv, timeout=self.b.a.timeout, env=env)
        if rc != 0:
            raise self.bm.CallFailed("`%s` exit %d: %s" % (what, rc, self.bm.first_line(err)), err)
        return self.bm.Sample(s.wall, s.cpu)

    def m_podman(self, rt):
        pm = self.handle("podman", rt)
        argv = [pm.exe] + [str(a) for a in pm.argv[1:]] + [
            "run", "--rm", *pm.run_args(), self.cf.IMAGE, "true"]
        return {"podman run --rm": self.timed("podman run --rm", argv, pm.env)}, {}

    def m_ctr(self, rt):
        c = self.handle("ctr", rt)
        cid = "%s-ctr-%s" % (self.tag, uuid.uuid4().hex[:8])
        argv = [c.exe, "--address", str(c.cd.sock), "--namespace", c.cd.NS, "run", "--rm",
                *c.run_args(cid), self.cf.IMAGE, cid, "true"]
        return {"ctr run --rm": self.timed("ctr run --rm", argv, dict(self.bm.ENV))}, {}

    def m_cri(self, rt):
        cri = self.handle("cri", rt)
        name = "kb-%s" % uuid.uuid4().hex[:8]
        t0 = time.perf_counter()
        try:
            pod = cri.pod(name)
            cid = cri.container(pod, name, ["true"])
            # as kubelet: see the container exit (ContainerStatus), then stop
            # and remove it; containerd may still call it running for a moment
            # after StopContainer returns ("to stop first"): retried
            exited = cri.pb.ContainerState.Value("CONTAINER_EXITED")
            end = time.monotonic() + self.b.a.timeout
            while cri.status(cid).status.state != exited and time.monotonic() < end:
                time.sleep(0.002)
            cri.call("StopContainer", container_id=cid, timeout=0)
            for _ in range(500):
                try:
                    cri.call("RemoveContainer", container_id=cid)
                    break
                except Exception as e:          # noqa: BLE001 - grpc.RpcError
                    if "to stop first" not in str(e):
                        raise
                    time.sleep(0.002)
            cri.call("StopPodSandbox", pod_sandbox_id=pod[0])
            cri.call("RemovePodSandbox", pod_sandbox_id=pod[0])
            cri.pods.remove(pod[0])
        except Exception as e:                  # noqa: BLE001 - grpc.RpcError and friends
            raise self.bm.CallFailed("CRI: %s" % str(e).strip()[:300])
        return {"CRI pod+container": self.bm.Sample(time.perf_counter() - t0, 0.0)}, {}

    def m_docker(self, rt):
        dk = self.handle("docker", rt)
        argv = [shutil.which(dk.bin) or dk.bin, "run", "--rm", *dk.run_args(), self.cf.IMAGE,
                "true"]
        return {"docker run --rm": self.timed("docker run --rm", argv, dk.env)}, {}

    # ---- clean-up
    def close(self):
        cf = self.cf
        for o in reversed(self.objs):
            try:
                o.close()
            except (Exception,) + self.skip as e:       # noqa: BLE001 - reported, go on
                self.say("bench: closing %s: %s" % (type(o).__name__, e))
        base = cf.Path(self.base)
        leaks = cf._leftovers(base, self.tag)
        cf._force_clean(base, self.tag)
        mps = [ln.split()[4] for ln in open("/proc/self/mountinfo").read().splitlines()]
        for p in self.fresh:
            if not any(m == p or m.startswith(p + "/") for m in mps):
                shutil.rmtree(p, ignore_errors=True)
        if leaks:
            self.say("bench: left behind by the engines (removed): " + "; ".join(leaks))
        if not any(m.startswith(self.base + "/") for m in mps):
            shutil.rmtree(self.base, ignore_errors=True)
        else:
            self.say("bench: mounts left under %s; not removing it" % self.base)
