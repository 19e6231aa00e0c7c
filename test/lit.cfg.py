# -*- Python -*-
# lit configuration of the emb-mlir tests (after mlir/examples/standalone).

import os
import sys

import lit.formats
from lit.llvm import llvm_config
from lit.llvm.subst import ToolSubst

config.name = "EMB"
config.test_format = lit.formats.ShTest(not llvm_config.use_lit_shell)
config.suffixes = [".mlir", ".test"]
config.excludes = ["CMakeLists.txt", "lit.cfg.py", "lit.site.cfg.py", "unit"]

config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.emb_obj_root, "test")

config.substitutions.append(("%PATH%", config.environment["PATH"]))
config.substitutions.append(("%emb_src_root", config.emb_src_root))

llvm_config.with_system_environment(["HOME", "INCLUDE", "LIB", "TMP", "TEMP"])
llvm_config.use_default_substitutions()

llvm_config.with_environment("PATH", config.llvm_tools_dir, append_path=True)
tool_dirs = [config.emb_tools_dir, config.llvm_tools_dir]
tools = ["emb-opt", "emb-run"]
llvm_config.add_tool_substitutions(tools, tool_dirs)

# The stock mlir-opt of the LLVM installation, and where our plugins are.
# In a sanitized build the plugins need the sanitizer's runtime, which the
# stock (unsanitized) mlir-opt does not load: preloaded (LSan off: it would
# report the host program's own allocations).
stock_mlir_opt = os.path.join(config.llvm_tools_dir, "mlir-opt")
if config.sanitizer_preload:
    stock_mlir_opt = "env LD_PRELOAD=%s ASAN_OPTIONS=detect_leaks=0 %s" % (
        config.sanitizer_preload, stock_mlir_opt)
config.substitutions.append(("%stock_mlir_opt", stock_mlir_opt))
config.substitutions.append(("%emb_libs", os.path.join(config.emb_obj_root, "lib")))

# Stock mlir-runner and its runtime libraries (printMemrefF32), to run
# whole lowered modules.
llvm_lib_dir = os.path.normpath(os.path.join(config.llvm_tools_dir, "..", "lib"))
config.substitutions.append(
    ("%stock_mlir_runner", os.path.join(config.llvm_tools_dir, "mlir-runner")))
config.substitutions.append(
    ("%runner_utils_lib", os.path.join(llvm_lib_dir, "libmlir_runner_utils.so")))
config.substitutions.append(
    ("%c_runner_utils_lib", os.path.join(llvm_lib_dir, "libmlir_c_runner_utils.so")))

# AVX-512 hosts run emb-run's gather probe (tools/emb-run/GatherProbe.cpp).
try:
    with open("/proc/cpuinfo") as cpuinfo:
        flags = set(cpuinfo.read().split())
    if {"avx512f", "avx512bw", "avx512vl"} <= flags:
        config.available_features.add("avx512")
except OSError:
    pass

# The Python of lit itself, for the scripts the tests run (bench/).
config.substitutions.append(("%python", sys.executable))

# IREE (pip install iree-base-compiler iree-base-runtime), when its tools
# are on PATH or in $EMB_IREE_BIN: convert-emb-to-linalg's output compiled
# by iree-compile and run by iree-run-module.
import shutil
iree_path = os.pathsep.join(
    p for p in [os.environ.get("EMB_IREE_BIN", ""), os.environ.get("PATH", "")] if p)
iree_compile = shutil.which("iree-compile", path=iree_path)
iree_run = shutil.which("iree-run-module", path=iree_path)
if iree_compile and iree_run:
    config.available_features.add("iree")
    config.substitutions.append(("%iree_compile", iree_compile))
    config.substitutions.append(("%iree_run_module", iree_run))

# ptxas (CUDA toolkit) checks the generated PTX when it is installed.
for ptxas in [os.path.join(os.environ.get("CUDA_HOME", "/usr/local/cuda"), "bin", "ptxas"),
              "/usr/local/cuda/bin/ptxas"]:
    if os.path.exists(ptxas):
        config.available_features.add("ptxas")
        config.substitutions.append(("%ptxas", ptxas))
        break
