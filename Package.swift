// swift-tools-version:6.0
// Kiln: a Keras-to-native compiler. See README.md for the architecture.
import PackageDescription

let package = Package(
    name: "Kiln",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "kiln", targets: ["kiln"]),
        .library(name: "Kiln", targets: ["Kiln"]),
        .library(name: "KilnRuntime", targets: ["KilnRuntime"]),
        // The same as a shared library (libKilnRuntimeShared.so): for programs built with swiftc
        // rather than SwiftPM, such as samples/swift (its .npy reader, NPY.read).
        .library(name: "KilnRuntimeShared", type: .dynamic, targets: ["KilnRuntime"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/weichsel/ZIPFoundation", from: "0.9.19"),
    ],
    targets: [
        // System libraries, found through pkg-config: hdf5-serial.pc comes with Debian's
        // libhdf5-dev, llvm-c-19.pc is written by tools/install-deps.sh (`make deps`).
        .systemLibrary(name: "CLLVM", path: "Sources/CLLVM", pkgConfig: "llvm-c-19", providers: [.apt(["llvm-19-dev"])]),
        .systemLibrary(name: "CHDF5", path: "Sources/CHDF5", pkgConfig: "hdf5-serial", providers: [.apt(["libhdf5-dev"])]),
        // The compiled libraries' C interface (Runtime/kiln_abi.h), header only.
        .systemLibrary(name: "CKilnABI", path: "Sources/CKilnABI"),

        // Helpers every module uses: splitmix64, Keras' shape notation, the all-or-nothing file
        // write, JSON (value, parser, writer).
        .target(name: "KilnSupport"),
        // The typed graph IR: tensor types, ops, shape inference, printer, and the primitive
        // table (Ops/: each primitive family's shape, gradient, float64, kernel and printing rules).
        .target(name: "KilnIR", dependencies: ["KilnSupport"]),
        // Graph -> Graph passes and the pipeline that orders them.
        .target(name: "KilnPasses", dependencies: ["KilnIR"]),
        // A naive float64 interpreter of primitive graphs (each primitive's float64 rule is in
        // its family's file): the tests' numerical reference.
        .target(name: "KilnReference", dependencies: ["KilnIR"]),
        // Loop kernels -> LLVM IR -> object file -> libNAME.so + NAME.h.
        .target(
            name: "KilnLLVM",
            dependencies: ["KilnSupport", "KilnIR", "KilnPasses", "CLLVM", "CKilnABI"]),
        // The layer table: one file per Keras layer (or family) in Layers/, each with its
        // LayerKind (import, weights, shapes, masks, lowering, config) and its Swift API class,
        // and the Swift API's base (Layer, KerasTensor, Input) they share.
        .target(name: "KilnLayers", dependencies: ["KilnSupport", "KilnIR", "KilnRuntime"]),
        // Keras 3 .keras importer (zip + config.json + model.weights.h5).
        .target(
            name: "KilnKeras",
            dependencies: ["KilnSupport", "KilnIR", "KilnLayers", "CHDF5", .product(name: "ZIPFoundation", package: "ZIPFoundation")]),
        // Loads a compiled library (dlopen) and runs predict / fit; .npy I/O.
        .target(name: "KilnRuntime", dependencies: ["KilnSupport", "CKilnABI"]),
        // The Swift model API: Sequential, functional graphs, Keras-named layers.
        .target(name: "Kiln", dependencies: ["KilnIR", "KilnLayers", "KilnPasses", "KilnLLVM", "KilnKeras", "KilnRuntime"]),
        // The `kiln` command.
        .executableTarget(
            name: "kiln",
            dependencies: ["Kiln", "KilnSupport", .product(name: "ArgumentParser", package: "swift-argument-parser")]),

        // What the test targets share: the process runner, assertClose.
        .target(name: "KilnTestSupport", path: "Tests/KilnTestSupport"),
        .testTarget(name: "KilnIRTests", dependencies: ["KilnIR", "KilnLayers", "KilnPasses", "KilnReference", "KilnTestSupport"]),
        .testTarget(name: "KilnLLVMTests", dependencies: ["Kiln", "KilnTestSupport"]),
        .testTarget(name: "KilnKerasTests", dependencies: ["KilnKeras", "Kiln", "KilnTestSupport"]),
        .testTarget(name: "KilnRuntimeTests", dependencies: ["KilnRuntime", "KilnTestSupport"]),
    ],
    swiftLanguageModes: [.v5]
)
