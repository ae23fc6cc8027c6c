import CLLVM
import KilnIR

/// An LLVM module being built, with the types and intrinsics kernels use.
final class ModuleBuilder {
    let ctx: LLVMContextRef
    let module: LLVMModuleRef
    let b: LLVMBuilderRef
    let f32: LLVMTypeRef, f64: LLVMTypeRef, i64: LLVMTypeRef, i32: LLVMTypeRef, i8: LLVMTypeRef, i1: LLVMTypeRef
    let ptr: LLVMTypeRef, void: LLVMTypeRef

    init(name: String) {
        ctx = LLVMContextCreate()
        module = LLVMModuleCreateWithNameInContext(name, ctx)
        b = LLVMCreateBuilderInContext(ctx)
        f32 = LLVMFloatTypeInContext(ctx)
        f64 = LLVMDoubleTypeInContext(ctx)
        i64 = LLVMInt64TypeInContext(ctx)
        i32 = LLVMInt32TypeInContext(ctx)
        i8 = LLVMInt8TypeInContext(ctx)
        i1 = LLVMInt1TypeInContext(ctx)
        ptr = LLVMPointerTypeInContext(ctx, 0)
        void = LLVMVoidTypeInContext(ctx)
    }

    deinit {
        LLVMDisposeBuilder(b)
        LLVMDisposeModule(module)
        LLVMContextDispose(ctx)
    }

    func constF(_ v: Float) -> LLVMValueRef { LLVMConstReal(f32, Double(v)) }
    func constI(_ v: Int) -> LLVMValueRef { LLVMConstInt(i64, UInt64(bitPattern: Int64(v)), 1) }
    func constI32(_ v: Int) -> LLVMValueRef { LLVMConstInt(i32, UInt64(bitPattern: Int64(v)), 1) }

    func function(_ name: String, _ ret: LLVMTypeRef, _ params: [LLVMTypeRef], local: Bool = false) -> (LLVMValueRef, LLVMTypeRef) {
        var ps: [LLVMTypeRef?] = params
        let ty = ps.withUnsafeMutableBufferPointer { LLVMFunctionType(ret, $0.baseAddress, UInt32(params.count), 0)! }
        if let existing = LLVMGetNamedFunction(module, name) { return (existing, ty) }
        let f = LLVMAddFunction(module, name, ty)!
        if local { LLVMSetLinkage(f, LLVMInternalLinkage) }
        return (f, ty)
    }

    func call(_ fn: (LLVMValueRef, LLVMTypeRef), _ args: [LLVMValueRef], _ name: String = "") -> LLVMValueRef {
        var a: [LLVMValueRef?] = args
        return a.withUnsafeMutableBufferPointer { LLVMBuildCall2(b, fn.1, fn.0, $0.baseAddress, UInt32(args.count), name)! }
    }

    /// An overloaded intrinsic on f32 (or on `type`), e.g. "llvm.exp".
    func intrinsic(_ name: String, _ args: [LLVMValueRef], type: LLVMTypeRef? = nil) -> LLVMValueRef {
        let id = LLVMLookupIntrinsicID(name, name.utf8.count)
        var tys: [LLVMTypeRef?] = [type ?? f32]
        let decl = tys.withUnsafeMutableBufferPointer { LLVMGetIntrinsicDeclaration(module, id, $0.baseAddress, 1)! }
        let fty = tys.withUnsafeMutableBufferPointer { LLVMIntrinsicGetType(ctx, id, $0.baseAddress, 1)! }
        return call((decl, fty), args)
    }

    func gep(_ base: LLVMValueRef, _ elem: LLVMTypeRef, _ index: LLVMValueRef) -> LLVMValueRef {
        var idx: [LLVMValueRef?] = [index]
        return idx.withUnsafeMutableBufferPointer { LLVMBuildInBoundsGEP2(b, elem, base, $0.baseAddress, 1, "")! }
    }

    func addAttribute(_ fn: LLVMValueRef, index: UInt32, _ name: String) {
        let kind = LLVMGetEnumAttributeKindForName(name, name.utf8.count)
        LLVMAddAttributeAtIndex(fn, index, LLVMCreateEnumAttribute(ctx, kind, 0))
    }
}
