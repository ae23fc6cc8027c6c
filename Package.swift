// swift-tools-version:6.0
// Kiln: a Keras-to-native compiler. See README.md for the architecture.
import PackageDescription

let llvmInclude = "/usr/lib/llvm-19/include"
let llvmLib = "/usr/lib/llvm-19/lib"
let hdf5Include = "/usr/include/hdf5/serial"
let hdf5Lib = "/usr/lib/x86_64-linux-gnu/hdf5/serial"

let package = Package(
    name: "Kiln",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "kiln", targets: ["kiln"]),
        .library(name: "Kiln", targets: ["Kiln"]),
        .library(name: "KilnRuntime", targets: ["KilnRuntime"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/weichsel/ZIPFoundation", from: "0.9.19"),
    ],
    targets: [
        // System libraries.
        .systemLibrary(name: "CLLVM", path: "Sources/CLLVM"),
        .systemLibrary(name: "CHDF5", path: "Sources/CHDF5"),

        // The typed graph IR: tensor types, ops, shape inference, printer.
        .target(name: "KilnIR"),
        // Graph -> Graph passes and the pipeline that orders them.
        .target(name: "KilnPasses", dependencies: ["KilnIR"]),
        // A naive float64 interpreter of primitive graphs: the tests' numerical reference.
        .target(name: "KilnReference", dependencies: ["KilnIR"]),
        // Loop kernels -> LLVM IR -> object file -> libNAME.so + NAME.h.
        .target(
            name: "KilnLLVM",
            dependencies: ["KilnIR", "KilnPasses", "CLLVM"],
            swiftSettings: [.unsafeFlags(["-Xcc", "-I\(llvmInclude)"])],
            linkerSettings: [
                .unsafeFlags(["-L\(llvmLib)", "-Xlinker", "-rpath", "-Xlinker", llvmLib]),
                .linkedLibrary("LLVM-19"),
            ]),
        // Keras 3 .keras importer (zip + config.json + model.weights.h5).
        .target(
            name: "KilnKeras",
            dependencies: ["KilnIR", "KilnPasses", "CHDF5", .product(name: "ZIPFoundation", package: "ZIPFoundation")],
            swiftSettings: [.unsafeFlags(["-Xcc", "-I\(hdf5Include)"])],
            linkerSettings: [
                .unsafeFlags(["-L\(hdf5Lib)", "-Xlinker", "-rpath", "-Xlinker", hdf5Lib]),
                .linkedLibrary("hdf5"),
            ]),
        // Loads a compiled library (dlopen) and runs predict / fit; .npy I/O.
        .target(name: "KilnRuntime"),
        // The Swift model API: Sequential, functional graphs, Keras-named layers.
        .target(name: "Kiln", dependencies: ["KilnIR", "KilnPasses", "KilnLLVM", "KilnKeras", "KilnRuntime"]),
        // The `kiln` command.
        .executableTarget(
            name: "kiln",
            dependencies: ["Kiln", .product(name: "ArgumentParser", package: "swift-argument-parser")]),

        .testTarget(name: "KilnIRTests", dependencies: ["KilnIR", "KilnPasses", "KilnReference"]),
        .testTarget(name: "KilnLLVMTests", dependencies: ["Kiln"]),
        .testTarget(name: "KilnKerasTests", dependencies: ["KilnKeras", "Kiln"]),
        .testTarget(name: "KilnRuntimeTests", dependencies: ["KilnRuntime"]),
    ],
    swiftLanguageModes: [.v5]
)
