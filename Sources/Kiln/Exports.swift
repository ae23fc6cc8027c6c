// The Kiln module re-exports the Swift API's layers (KilnLayers) and the runtime's
// host-side types (KilnRuntime), so `import Kiln` is all a program needs.

@_exported import KilnLayers
@_exported import KilnRuntime
