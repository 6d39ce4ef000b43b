"""nightshift_fuzzer: a libFuzzer target and its corpus replay test.

  NAME              the fuzzer (tags manual): built by deploy/fuzz.sh with
                    --config=fuzz (clang 14, -fsanitize=fuzzer,address,
                    undefined) and run on a copy of its corpus
  NAME_corpus_test  the same entry point, built like every test, fed each
                    file of the checked-in corpus once (base/fuzz_replay_main.cc):
                    the corpus stays crash-free in every `bazel test //...`
"""

def nightshift_fuzzer(name, srcs, deps, corpus):
    native.cc_binary(
        name = name,
        srcs = srcs,
        deps = deps,
        linkopts = ["-fsanitize=fuzzer"],
        tags = ["manual"],
        testonly = True,
    )
    native.cc_test(
        name = name + "_corpus_test",
        srcs = srcs,
        deps = deps + ["//base:fuzz_replay_main"],
        args = ["$(location %s)" % corpus[0]],
        data = corpus,
    )
