#!/usr/bin/python3
"""Checks deploy/kubernetes and deploy/docker/Dockerfile without a cluster
or a Docker engine (neither runs here; `kubectl --dry-run=client` needs an
API server to map kinds).

usage: manifests_test.py KUBERNETES_DIR_OR_A_FILE_IN_IT DOCKERFILE NIGHTSHIFT COORDINATOR WORKER

For the manifests, a schema of the fields these kinds need and the links
between objects that Kubernetes itself would only find at run time:
every object is in the nightshift namespace; a StatefulSet's serviceName
names a headless Service, its selector matches its pod labels, and each
volume mount names a volume or claim template; every Secret a pod mounts
exists, with the keys it asks for; every Service selects some pod and
targets a port that pod declares; probes use declared ports; containers
run as non-root with no privilege escalation, a read-only root and no
capabilities; the command is a binary the Dockerfile installs and every
--flag in args is one that binary defines. For the Dockerfile: every
shared library the binaries load comes from a package its runtime stage
installs. Then it breaks a copy of the manifests in several ways and
checks that each break is caught.
"""
import copy
import functools
import os
import re
import subprocess
import sys

import yaml

NAMESPACE = "nightshift"


def load(kdir):
    objects = []
    for name in sorted(os.listdir(kdir)):
        if name.endswith(".yaml"):
            with open(os.path.join(kdir, name)) as f:
                for doc in yaml.safe_load_all(f):
                    if doc is not None:
                        objects.append((name, doc))
    return objects


@functools.lru_cache(maxsize=None)
def flags_of(binary):
    out = subprocess.run([binary, "--helpfull"], capture_output=True, text=True)
    return set(re.findall(r"^\s+--([a-z_0-9]+) \(", out.stdout + out.stderr, re.M))


def check(objects, binaries):
    """Returns a list of problems, each naming file, object and field."""
    problems = []
    by_kind = {}
    for file, o in objects:
        where = f"{file}: {o.get('kind')}/{o.get('metadata', {}).get('name')}"
        for field in ("apiVersion", "kind", "metadata"):
            if field not in o:
                problems.append(f"{where}: no {field}")
        if o.get("kind") != "Namespace" and o.get("metadata", {}).get("namespace") != NAMESPACE:
            problems.append(f"{where}: metadata.namespace is not {NAMESPACE}")
        by_kind.setdefault(o.get("kind"), []).append((where, o))

    secrets = {o["metadata"]["name"]: set(o.get("stringData", {})) | set(o.get("data", {}))
               for _, o in by_kind.get("Secret", [])}
    services = {o["metadata"]["name"]: (w, o) for w, o in by_kind.get("Service", [])}
    pods = []  # (where, labels, pod spec)
    for where, o in by_kind.get("StatefulSet", []) + by_kind.get("Deployment", []) + \
            by_kind.get("DaemonSet", []):
        spec = o.get("spec", {})
        template = spec.get("template", {})
        labels = template.get("metadata", {}).get("labels", {})
        selector = spec.get("selector", {}).get("matchLabels", {})
        if not selector or any(labels.get(k) != v for k, v in selector.items()):
            problems.append(f"{where}: spec.selector.matchLabels does not match the pod labels")
        if o["kind"] == "StatefulSet":
            governing = services.get(spec.get("serviceName"))
            if governing is None or governing[1]["spec"].get("clusterIP") != "None":
                problems.append(f"{where}: spec.serviceName is not a headless Service")
        pod = template.get("spec", {})
        pods.append((where, labels, pod))
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        claims = {c["metadata"]["name"] for c in spec.get("volumeClaimTemplates", [])}
        for v in volumes.values():
            if "secret" in v:
                name = v["secret"].get("secretName")
                if name not in secrets:
                    problems.append(f"{where}: volume {v['name']}: no Secret {name}")
                for item in v["secret"].get("items", []):
                    if item["key"] not in secrets.get(name, set()):
                        problems.append(f"{where}: volume {v['name']}: Secret {name} has no "
                                        f"key {item['key']}")
        security = pod.get("securityContext", {})
        if security.get("runAsNonRoot") is not True:
            problems.append(f"{where}: pod securityContext.runAsNonRoot is not true")
        for c in pod.get("containers", []):
            cwhere = f"{where}: container {c.get('name')}"
            if not c.get("image"):
                problems.append(f"{cwhere}: no image")
            ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
            for m in c.get("volumeMounts", []):
                if m["name"] not in volumes and m["name"] not in claims:
                    problems.append(f"{cwhere}: volumeMounts {m['name']}: no such volume")
            for probe in ("readinessProbe", "livenessProbe"):
                port = c.get(probe, {}).get("httpGet", {}).get("port")
                if port is not None and port not in ports and port not in ports.values():
                    problems.append(f"{cwhere}: {probe} port {port} is not declared")
            sc = c.get("securityContext", {})
            if sc.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{cwhere}: securityContext.allowPrivilegeEscalation is not false")
            if sc.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{cwhere}: securityContext.readOnlyRootFilesystem is not true")
            if sc.get("capabilities", {}).get("drop") != ["ALL"]:
                problems.append(f"{cwhere}: securityContext.capabilities.drop is not [ALL]")
            command = (c.get("command") or [""])[0]
            binary = binaries.get(os.path.basename(command))
            if binary is None or not command.startswith("/usr/local/bin/"):
                problems.append(f"{cwhere}: command {command} is not a Nightshift binary")
                continue
            known = flags_of(binary)
            for arg in c.get("args", []):
                m = re.match(r"--([a-z_0-9]+)", arg)
                if m is None or m.group(1) not in known:
                    problems.append(f"{cwhere}: args {arg!r}: {command} has no such flag")
            env = {e["name"] for e in c.get("env", [])}
            for ref in re.findall(r"\$\(([A-Z_]+)\)", " ".join(c.get("args", []))):
                if ref not in env:
                    problems.append(f"{cwhere}: args use $({ref}), which env does not set")
    for name, (where, svc) in services.items():
        selector = svc["spec"].get("selector", {})
        matching = [p for p in pods if all(p[1].get(k) == v for k, v in selector.items())]
        if not selector or not matching:
            problems.append(f"{where}: spec.selector selects no pod")
            continue
        for port in svc["spec"].get("ports", []):
            target = port.get("targetPort", port.get("port"))
            declared = [p for _, _, pod in matching for c in pod.get("containers", [])
                        for p in c.get("ports", [])]
            if not any(target in (p.get("name"), p["containerPort"]) for p in declared):
                problems.append(f"{where}: port {port.get('name')}: targetPort {target} is "
                                "declared by no selected container")
    return problems


def runtime_packages(dockerfile):
    """The packages the last stage's apt-get install names, and the files
    its COPY --from=build puts in /usr/local/bin."""
    text = open(dockerfile).read().replace("\\\n", " ")
    last = text[text.rindex("\nFROM "):]
    packages = set()
    for m in re.finditer(r"apt-get install ([^&]*)", last):
        packages |= {w for w in m.group(1).split() if not w.startswith("-")}
    copied = set()
    for m in re.finditer(r"COPY --from=build (.*) /usr/local/bin/", last):
        copied |= {os.path.basename(w) for w in m.group(1).split()}
    return packages, copied


def libraries(binary):
    """The shared libraries `binary` loads."""
    out = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    return re.findall(r"=> (/\S+)", out)


def packages_of(libs):
    """The Debian package holding each shared library of `libs` (None if
    none does), by its path, its real path or that under /usr (merged /usr).
    One dpkg query for all: each reads dpkg's whole file list, about a
    second on a busy machine, and a query per path ran past the test's
    minute."""
    candidates = {}  # path -> library
    for lib in libs:
        for path in (lib, os.path.realpath(lib), "/usr" + os.path.realpath(lib)):
            candidates.setdefault(path, lib)
    q = subprocess.run(["dpkg", "-S", *candidates], capture_output=True, text=True)
    found = {}
    for line in q.stdout.splitlines():
        package, sep, path = line.partition(": ")
        if sep and path in candidates:
            found.setdefault(candidates[path], package.split(":")[0])
    return {lib: found.get(lib) for lib in libs}


# Libraries debian:12-slim itself holds (its essential packages and apt's
# dependencies).
BASE_IMAGE_PACKAGES = {"libc6", "libgcc-s1", "zlib1g", "liblzma5", "libstdc++6", "libzstd1",
                       "libgnutls30", "libsystemd0"}


def main():
    kdir, dockerfile, *bins = sys.argv[1:]
    if os.path.isfile(kdir):
        kdir = os.path.dirname(kdir)
    binaries = {}
    for b in bins:
        name = os.path.basename(b)
        binaries[name] = b
    objects = load(kdir)
    kinds = sorted({o["kind"] for _, o in objects})
    problems = check(objects, binaries)

    packages, copied = runtime_packages(dockerfile)
    loads = {name: libraries(b) for name, b in binaries.items()}
    package = packages_of(sorted({lib for libs in loads.values() for lib in libs}))
    for name in binaries:
        if name not in copied:
            problems.append(f"{dockerfile}: the runtime stage does not copy {name}")
        for lib in loads[name]:
            if package[lib] not in packages | BASE_IMAGE_PACKAGES:
                problems.append(f"{dockerfile}: {name} loads {lib} from {package[lib]}, "
                                "which the runtime stage does not install")
    if problems:
        sys.exit("FAIL:\n  " + "\n  ".join(problems))
    print(f"{len(objects)} objects ({', '.join(kinds)}) and the Dockerfile check out")

    # Each break must be caught, naming what broke.
    def broken(edit, expect):
        objs = copy.deepcopy(objects)
        edit({(o["kind"], o["metadata"]["name"]): o for _, o in objs})
        found = check(objs, binaries)
        if not any(expect in p for p in found):
            sys.exit(f"FAIL: a break expecting {expect!r} was not caught: {found}")

    pod = lambda objs: objs[("StatefulSet", "nightshift-worker")]["spec"]["template"]["spec"]
    broken(lambda objs: objs[("StatefulSet", "nightshift-worker")]["spec"]["selector"]
           ["matchLabels"].update({"app.kubernetes.io/name": "other"}), "spec.selector")
    broken(lambda objs: pod(objs)["containers"][0]["args"].append("--no_such_flag=1"),
           "no_such_flag")
    broken(lambda objs: pod(objs)["volumes"][2]["secret"].update({"secretName": "missing"}),
           "no Secret missing")
    broken(lambda objs: objs[("Service", "nightshift-coordinator")]["spec"]["ports"][0]
           .update({"targetPort": "nope"}), "targetPort nope")
    broken(lambda objs: pod(objs)["containers"][0]["securityContext"]
           .update({"allowPrivilegeEscalation": True}), "allowPrivilegeEscalation")
    print("PASS")


if __name__ == "__main__":
    main()
