// swift-tools-version:6.0
// A package that uses Kiln as a dependency (by path here; by URL the same way):
// it builds a model with Kiln's Swift API, compiles it with Compiler.compile and
// runs the library through KilnRuntime. `make dependent` builds and runs it.
import PackageDescription

let package = Package(
    name: "KilnDependent",
    dependencies: [.package(name: "Kiln", path: "../..")],
    targets: [
        .executableTarget(name: "kiln-dependent", dependencies: [
            .product(name: "Kiln", package: "Kiln"),
            .product(name: "KilnRuntime", package: "Kiln"),
        ]),
    ]
)
