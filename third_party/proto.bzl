"""One macro that compiles protos with Debian's protoc and grpc_cpp_plugin.

nightshift_cc_proto(name, srcs, proto_root, grpc_srcs, deps) runs the system
`protoc` (and `grpc_cpp_plugin` for `grpc_srcs`) in a genrule and wraps the
generated code in one cc_library. Import paths are relative to
`proto_root` (a folder of the calling package), so generated code is
included as "nightshift/v1/job.pb.h". `imports` are .proto files that
`srcs` import but another nightshift_cc_proto (in `deps`) compiles.
"""

def _outs(srcs, proto_root, exts):
    outs = []
    for src in srcs:
        base = src[len(proto_root) + 1:-len(".proto")] if proto_root else src[:-len(".proto")]
        for ext in exts:
            outs.append(((proto_root + "/") if proto_root else "") + base + ext)
    return outs

def nightshift_cc_proto(name, srcs = [], grpc_srcs = [], imports = [], proto_root = "", deps = [], visibility = None):
    all_srcs = srcs + grpc_srcs
    pb = _outs(all_srcs, proto_root, [".pb.h", ".pb.cc"])
    grpc = _outs(grpc_srcs, proto_root, [".grpc.pb.h", ".grpc.pb.cc"])
    root = "$(RULEDIR)" + (("/" + proto_root) if proto_root else "")
    src_root = native.package_name() + (("/" + proto_root) if proto_root else "")
    cmd = "protoc -I%s --cpp_out=%s %s" % (
        src_root,
        root,
        " ".join(["$(location %s)" % s for s in all_srcs]),
    )
    if grpc_srcs:
        cmd += " && protoc -I%s --grpc_out=%s --plugin=protoc-gen-grpc=$$(command -v grpc_cpp_plugin) %s" % (
            src_root,
            root,
            " ".join(["$(location %s)" % s for s in grpc_srcs]),
        )
    native.genrule(
        name = name + "_gen",
        srcs = all_srcs + imports,
        outs = pb + grpc,
        cmd = cmd,
    )
    native.cc_library(
        name = name,
        srcs = [f for f in pb + grpc if f.endswith(".cc")],
        hdrs = [f for f in pb + grpc if f.endswith(".h")],
        includes = [proto_root] if proto_root else ["."],
        deps = deps + ["@system//:protobuf"] + (["@system//:grpc"] if grpc_srcs else []),
        visibility = visibility,
    )
