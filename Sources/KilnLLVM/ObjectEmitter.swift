import CLLVM
import Foundation
import KilnIR
import KilnPasses

/// An error from the backend (target set-up, verification, emission).
public struct BackendError: Error, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}

/// What one compiled library contains: programs for predict and (optionally)
/// the training step and evaluation, sharing one state layout.
public struct LibraryPrograms {
    public var name: String
    public var predict: Program
    public var train: Program?
    public var evaluate: Program?
    public var initialState: [UInt8]
    public init(name: String, predict: Program, train: Program?, evaluate: Program?, initialState: [UInt8]) {
        self.name = name; self.predict = predict; self.train = train; self.evaluate = evaluate; self.initialState = initialState
    }
}

/// Emits the object file of a library: NAME__predict, NAME__train,
/// NAME__evaluate and NAME__init_state, optimized for the host CPU.
public enum ObjectEmitter {
    public static func emit(_ lib: LibraryPrograms, to path: String, llvmIR: String? = nil) throws {
        let timing = ProcessInfo.processInfo.environment["KILN_TIMING"] != nil
        var clock = Date()
        func lap(_ what: String) {
            if timing { FileHandle.standardError.write(String(format: "//   %@ %.3f s\n", what, Date().timeIntervalSince(clock)).data(using: .utf8)!) }
            clock = Date()
        }
        let m = ModuleBuilder(name: lib.name)
        let emitter = ProgramEmitter(m)
        emitter.emitPredict(lib.predict, name: "\(lib.name)__predict")
        if let t = lib.train { emitter.emitTrain(t, name: "\(lib.name)__train") }
        if let e = lib.evaluate { emitter.emitTrain(e, name: "\(lib.name)__evaluate") }
        emitter.emitBlob(lib.initialState, name: "\(lib.name)__init_state")

        lap("LLVM IR built")
        var err: UnsafeMutablePointer<CChar>? = nil
        if LLVMVerifyModule(m.module, LLVMReturnStatusAction, &err) != 0 {
            let msg = err.map { String(cString: $0) } ?? "unknown"
            LLVMDisposeMessage(err)
            throw BackendError("internal error: generated LLVM IR does not verify: \(msg)")
        }
        LLVMDisposeMessage(err)
        let tm = try targetMachine()
        defer { LLVMDisposeTargetMachine(tm) }
        let triple = LLVMGetDefaultTargetTriple()
        LLVMSetTarget(m.module, triple)
        LLVMDisposeMessage(triple)
        let layout = LLVMCreateTargetDataLayout(tm)
        LLVMSetModuleDataLayout(m.module, layout)
        LLVMDisposeTargetData(layout)

        let opts = LLVMCreatePassBuilderOptions()
        defer { LLVMDisposePassBuilderOptions(opts) }
        LLVMPassBuilderOptionsSetLoopVectorization(opts, 1)
        LLVMPassBuilderOptionsSetSLPVectorization(opts, 1)
        if let e = LLVMRunPasses(m.module, "default<O3>", tm, opts) {
            let msg = LLVMGetErrorMessage(e)
            let s = msg.map { String(cString: $0) } ?? "unknown"
            LLVMDisposeErrorMessage(msg)
            throw BackendError("internal error: LLVM optimization failed: \(s)")
        }
        lap("LLVM optimized")
        if let irPath = llvmIR {
            var e2: UnsafeMutablePointer<CChar>? = nil
            _ = LLVMPrintModuleToFile(m.module, irPath, &e2)
            LLVMDisposeMessage(e2)
        }
        var emitErr: UnsafeMutablePointer<CChar>? = nil
        let p = strdup(path)!
        defer { free(p) }
        if LLVMTargetMachineEmitToFile(tm, m.module, p, LLVMObjectFile, &emitErr) != 0 {
            let msg = emitErr.map { String(cString: $0) } ?? "unknown"
            LLVMDisposeMessage(emitErr)
            throw BackendError("could not write object file \(path): \(msg)")
        }
        lap("machine code")
    }

    static func targetMachine() throws -> LLVMTargetMachineRef {
        if LLVMInitializeNativeTarget() != 0 || LLVMInitializeNativeAsmPrinter() != 0 {
            throw BackendError("LLVM has no native target for this machine")
        }
        let triple = LLVMGetDefaultTargetTriple()
        defer { LLVMDisposeMessage(triple) }
        var target: LLVMTargetRef? = nil
        var err: UnsafeMutablePointer<CChar>? = nil
        if LLVMGetTargetFromTriple(triple, &target, &err) != 0 {
            let msg = err.map { String(cString: $0) } ?? "unknown"
            LLVMDisposeMessage(err)
            throw BackendError("LLVM does not know target \(String(cString: triple!)): \(msg)")
        }
        let cpu = LLVMGetHostCPUName()
        let features = LLVMGetHostCPUFeatures()
        defer { LLVMDisposeMessage(cpu); LLVMDisposeMessage(features) }
        // $KILN_TARGET_CPU (e.g. x86-64-v3): that CPU with its own features instead of the host's, for
        // checking tools that do not run every instruction of the host (valgrind has no AVX-512).
        let chosenCPU = ProcessInfo.processInfo.environment["KILN_TARGET_CPU"] ?? ""
        let made = chosenCPU.isEmpty
            ? LLVMCreateTargetMachine(target, triple, cpu, features, LLVMCodeGenLevelAggressive, LLVMRelocPIC, LLVMCodeModelDefault)
            : LLVMCreateTargetMachine(target, triple, chosenCPU, "", LLVMCodeGenLevelAggressive, LLVMRelocPIC, LLVMCodeModelDefault)
        guard let tm = made else {
            throw BackendError("LLVM could not create a target machine")
        }
        return tm
    }
}
