//! The `#[task]` and `#[bootstrap]` attributes of the [`knitting`](https://docs.rs/knitting) crate.
//!
//! The expansion is thin on purpose: it names the task, its argument and
//! output types and its metadata, and calls only items of
//! `knitting::__private`. All logic lives in the main crate.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote, quote_spanned};
use syn::{
    parse::Parser, punctuated::Punctuated, spanned::Spanned, FnArg, GenericArgument, ItemFn,
    LitStr, Meta, PathArguments, ReturnType, Token, Type,
};

/// Turns a plain function into a knitting task.
///
/// See the `knitting::task` documentation for the full description; this
/// crate is an implementation detail of `knitting`.
#[proc_macro_attribute]
pub fn task(attr: TokenStream, item: TokenStream) -> TokenStream {
    match expand(attr.into(), item.into()) {
        Ok(tokens) => tokens.into(),
        Err(err) => err.to_compile_error().into(),
    }
}

/// Turns a function into a worker bootstrap; see `knitting::bootstrap`.
#[proc_macro_attribute]
pub fn bootstrap(attr: TokenStream, item: TokenStream) -> TokenStream {
    match bootstrap::expand(attr.into(), item.into()) {
        Ok(tokens) => tokens.into(),
        Err(err) => err.to_compile_error().into(),
    }
}

mod bootstrap;

/// Options written inside `#[task(...)]`.
#[derive(Default)]
struct Options {
    name: Option<LitStr>,
    threads_only: bool,
    /// `inline`: a thread pool runs the task on the caller's thread.
    inline: bool,
    /// `timeout = "200ms"`, in nanoseconds.
    timeout: Option<u64>,
    /// `hard_timeout = "1s"`, in nanoseconds.
    hard_timeout: Option<u64>,
    /// `default = expr`: the value of a call whose deadline passed.
    default: Option<syn::Expr>,
    /// `error = expr`: the error of a call whose deadline passed.
    error: Option<syn::Expr>,
}

const KNOWN_OPTIONS: &str = "known options: `name = \"...\"`, `timeout = \"200ms\"`, \
     `default = <value>`, `error = <error>`, `hard_timeout = \"1s\"`, `threads_only`, `inline`";

/// A duration written as a string literal: a number and a unit (`ns`,
/// `us`, `ms`, `s`, `m`), e.g. `"200ms"` or `"1.5s"`. In nanoseconds.
fn parse_duration(lit: &LitStr) -> syn::Result<u64> {
    let text = lit.value();
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let scale: f64 = match unit.trim() {
        "ns" => 1.0,
        "us" | "µs" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "m" | "min" => 60e9,
        _ => {
            return Err(syn::Error::new(
                lit.span(),
                "a duration is a number and a unit: ns, us, ms, s or m (e.g. \"200ms\")",
            ))
        }
    };
    let value: f64 = number
        .parse()
        .map_err(|_| syn::Error::new(lit.span(), "a duration starts with a number"))?;
    let nanos = value * scale;
    if !(1.0..=u64::MAX as f64).contains(&nanos) {
        return Err(syn::Error::new(
            lit.span(),
            "a duration must be positive (and under 584 years)",
        ));
    }
    Ok(nanos as u64)
}

fn string_value(nv: &syn::MetaNameValue, key: &str) -> syn::Result<LitStr> {
    match &nv.value {
        syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(s),
            ..
        }) => Ok(s.clone()),
        other => Err(syn::Error::new(
            other.span(),
            format!("`{key}` takes a string literal"),
        )),
    }
}

fn parse_options(attr: TokenStream2) -> syn::Result<Options> {
    let mut options = Options::default();
    let metas = Punctuated::<Meta, Token![,]>::parse_terminated.parse2(attr)?;
    for meta in metas {
        if let Meta::Path(path) = &meta {
            if path.is_ident("threads_only") {
                options.threads_only = true;
                continue;
            }
            if path.is_ident("inline") {
                options.inline = true;
                continue;
            }
        }
        let Meta::NameValue(nv) = &meta else {
            return Err(syn::Error::new(meta.span(), KNOWN_OPTIONS));
        };
        if nv.path.is_ident("name") {
            let s = string_value(nv, "name")?;
            if s.value().is_empty() {
                return Err(syn::Error::new(s.span(), "`name` must not be empty"));
            }
            options.name = Some(s);
        } else if nv.path.is_ident("timeout") {
            options.timeout = Some(parse_duration(&string_value(nv, "timeout")?)?);
        } else if nv.path.is_ident("hard_timeout") {
            options.hard_timeout = Some(parse_duration(&string_value(nv, "hard_timeout")?)?);
        } else if nv.path.is_ident("default") {
            options.default = Some(nv.value.clone());
        } else if nv.path.is_ident("error") {
            options.error = Some(nv.value.clone());
        } else {
            return Err(syn::Error::new(
                nv.path.span(),
                format!("unknown task option; {KNOWN_OPTIONS}"),
            ));
        }
    }
    if options.timeout.is_none() {
        if let Some(expr) = options.default.as_ref().or(options.error.as_ref()) {
            return Err(syn::Error::new(
                expr.span(),
                "`default` and `error` say what a call gives when its deadline passes: \
                 add `timeout = \"...\"`",
            ));
        }
    }
    if let (Some(_), Some(error)) = (&options.default, &options.error) {
        return Err(syn::Error::new(
            error.span(),
            "a timed-out call gives either the `default` value or the `error`, not both",
        ));
    }
    Ok(options)
}

/// Is `ty` written as `&Signal` / `&knitting::Signal`?
fn is_signal_ref(ty: &Type) -> bool {
    let Type::Reference(r) = ty else { return false };
    let Type::Path(p) = &*r.elem else {
        return false;
    };
    p.path.segments.last().is_some_and(|s| s.ident == "Signal")
}

/// Can `ty` hold a borrow? Such types (`&'static str`, `Cow<'a, T>`, trait
/// objects) cannot be decoded in another process, and testing them for
/// `DeserializeOwned` at compile time is a hard error rather than a "no",
/// so tasks that use them get no process entry.
fn may_borrow(ty: &Type) -> bool {
    let args_borrow = |args: &PathArguments| match args {
        PathArguments::None => false,
        PathArguments::AngleBracketed(a) => a.args.iter().any(|g| match g {
            GenericArgument::Type(t) => may_borrow(t),
            GenericArgument::Lifetime(l) => l.ident != "static",
            _ => false,
        }),
        PathArguments::Parenthesized(_) => true,
    };
    match ty {
        Type::Path(p) => {
            p.qself.as_ref().is_some_and(|q| may_borrow(&q.ty))
                || p.path.segments.iter().any(|s| args_borrow(&s.arguments))
        }
        Type::Tuple(t) => t.elems.iter().any(may_borrow),
        Type::Array(a) => may_borrow(&a.elem),
        Type::Slice(s) => may_borrow(&s.elem),
        Type::Paren(p) => may_borrow(&p.elem),
        Type::Group(g) => may_borrow(&g.elem),
        Type::Never(_) => false,
        _ => true,
    }
}

/// The first reference or lifetime in `ty` that is not `'static`, if any:
/// a call's arguments move to a worker, so they cannot borrow from the
/// caller.
fn non_static_borrow(ty: &Type) -> Option<Span> {
    let in_args = |args: &PathArguments| match args {
        PathArguments::AngleBracketed(a) => a.args.iter().find_map(|g| match g {
            GenericArgument::Type(t) => non_static_borrow(t),
            GenericArgument::Lifetime(l) if l.ident != "static" => Some(l.span()),
            _ => None,
        }),
        _ => None,
    };
    match ty {
        Type::Reference(r) => match &r.lifetime {
            Some(l) if l.ident == "static" => non_static_borrow(&r.elem),
            _ => Some(r.span()),
        },
        Type::Path(p) => p.path.segments.iter().find_map(|s| in_args(&s.arguments)),
        Type::Tuple(t) => t.elems.iter().find_map(non_static_borrow),
        Type::Array(a) => non_static_borrow(&a.elem),
        Type::Slice(s) => non_static_borrow(&s.elem),
        Type::Paren(p) => non_static_borrow(&p.elem),
        Type::Group(g) => non_static_borrow(&g.elem),
        _ => None,
    }
}

/// How one parameter or output crosses to a worker process: the name of
/// its `knitting::__private` wire adapter.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Wire {
    /// The type's own serde.
    Plain,
    /// `Vec<u8>` or `Box<[u8]>`: one byte string.
    ByteVec,
    /// A `&[T]` parameter: the caller passes a `Buffer<T>`, a worker reads
    /// it in place.
    Lent,
    /// Another `&T` parameter: the caller passes a `T`, a worker reads the
    /// buffers in it in place.
    Borrowed,
}

impl Wire {
    fn adapter(self) -> TokenStream2 {
        match self {
            Wire::Plain => quote!(::knitting::__private::Plain),
            Wire::ByteVec => quote!(::knitting::__private::ByteVec),
            Wire::Lent => quote!(::knitting::__private::Lent),
            Wire::Borrowed => quote!(::knitting::__private::Borrowed),
        }
    }
}

/// Is `ty` the path `u8` (no other segments, no arguments)?
fn is_u8(ty: &Type) -> bool {
    matches!(ty, Type::Path(p) if p.qself.is_none() && p.path.is_ident("u8"))
}

/// The adapter of an owned type: `Vec<u8>` and `Box<[u8]>` as written (any
/// path ending in `Vec` or `Box`) cross as one byte string.
fn owned_wire(ty: &Type) -> Wire {
    let Type::Path(p) = ty else {
        return Wire::Plain;
    };
    let Some(last) = p.path.segments.last() else {
        return Wire::Plain;
    };
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return Wire::Plain;
    };
    let only = match args.args.iter().collect::<Vec<_>>()[..] {
        [GenericArgument::Type(t)] => t,
        _ => return Wire::Plain,
    };
    let bytes = match (last.ident.to_string().as_str(), only) {
        ("Vec", t) => is_u8(t),
        ("Box", Type::Slice(s)) => is_u8(&s.elem),
        _ => false,
    };
    if bytes {
        Wire::ByteVec
    } else {
        Wire::Plain
    }
}

/// The element type of a shared slice parameter `&[T]`, if `ty` is one.
fn lent_slice(ty: &Type) -> Option<&Type> {
    let Type::Reference(r) = ty else { return None };
    if r.mutability.is_some() {
        return None;
    }
    match &*r.elem {
        Type::Slice(s) => Some(&s.elem),
        _ => None,
    }
}

/// The `T` of a parameter `&T` (no lifetime written, not `mut`) whose
/// value the call can carry instead: a sized type named by a path, other
/// than `str` and the signal.
fn borrowed_value(ty: &Type) -> Option<&Type> {
    let Type::Reference(r) = ty else { return None };
    if r.mutability.is_some() || r.lifetime.is_some() {
        return None;
    }
    match &*r.elem {
        Type::Path(p) if !p.path.is_ident("str") && !is_signal_ref(ty) => Some(&r.elem),
        _ => None,
    }
}

/// The `Ok` type of a `Result<T, E>` return type as written.
fn result_ok(ty: &Type) -> Option<&Type> {
    let Type::Path(p) = ty else { return None };
    match &p.path.segments.last()?.arguments {
        PathArguments::AngleBracketed(a) => a.args.iter().find_map(|g| match g {
            GenericArgument::Type(t) => Some(t),
            _ => None,
        }),
        _ => None,
    }
}

/// The item type of a `Sender<T>` / `knitting::Sender<T>` parameter (a
/// sender of another path, such as `mpsc::Sender<T>`, is an argument).
fn sender_item(ty: &Type) -> Option<&Type> {
    let Type::Path(p) = ty else { return None };
    if p.qself.is_some() {
        return None;
    }
    let segments: Vec<String> = p
        .path
        .segments
        .iter()
        .map(|s| s.ident.to_string())
        .collect();
    if !matches!(segments.as_slice(), [s] if s == "Sender")
        && !matches!(segments.as_slice(), [k, s] if k == "knitting" && s == "Sender")
    {
        return None;
    }
    let last = p.path.segments.last()?;
    match &last.arguments {
        PathArguments::AngleBracketed(a) if a.args.len() == 1 => match &a.args[0] {
            GenericArgument::Type(t) => Some(t),
            _ => None,
        },
        _ => None,
    }
}

/// Is the return type written as `Result<..>` (any path ending in `Result`)?
fn is_result(ty: &Type) -> bool {
    let Type::Path(p) = ty else { return false };
    let Some(last) = p.path.segments.last() else {
        return false;
    };
    last.ident == "Result"
        && matches!(&last.arguments, PathArguments::AngleBracketed(a)
            if a.args.iter().any(|g| matches!(g, GenericArgument::Type(_))))
}

fn expand(attr: TokenStream2, item: TokenStream2) -> syn::Result<TokenStream2> {
    let options = parse_options(attr)?;
    let func: ItemFn = syn::parse2(item)?;
    let sig = &func.sig;
    let is_async = sig.asyncness.is_some();
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        return Err(syn::Error::new(
            sig.generics.span(),
            "#[knitting::task] functions cannot be generic: a task has one fixed signature",
        ));
    }
    if let Some(v) = &sig.variadic {
        return Err(syn::Error::new(
            v.span(),
            "variadic tasks are not supported",
        ));
    }
    if let Some(u) = &sig.unsafety {
        return Err(syn::Error::new(u.span(), "a task cannot be an `unsafe fn`"));
    }

    let vis = &func.vis;
    let ident = &sig.ident;
    let attrs = &func.attrs;
    let body_ident = format_ident!("__knitting_task_body");

    // Split parameters into call arguments and the optional signal.
    let mut arg_types = Vec::new();
    let mut call_exprs = Vec::new();
    let mut fn_ptr_types = Vec::new();
    let mut arg_idents = Vec::new();
    let mut arg_wires = Vec::new();
    let mut signal_seen = false;
    // A streaming task's sender: its position among the call arguments,
    // and its item type.
    let mut sender: Option<(usize, Type)> = None;
    for (i, input) in sig.inputs.iter().enumerate() {
        let FnArg::Typed(pat_ty) = input else {
            return Err(syn::Error::new(
                input.span(),
                "#[knitting::task] goes on free functions, not methods",
            ));
        };
        let ty = &*pat_ty.ty;
        fn_ptr_types.push(quote!(#ty));
        if is_signal_ref(ty) {
            if signal_seen {
                return Err(syn::Error::new(
                    ty.span(),
                    "a task takes at most one signal",
                ));
            }
            signal_seen = true;
            call_exprs.push(quote!(__knitting_signal));
        } else if let Some(item) = sender_item(ty) {
            if sender.is_some() {
                return Err(syn::Error::new(
                    ty.span(),
                    "a task takes at most one sender",
                ));
            }
            if is_async {
                return Err(syn::Error::new(
                    ty.span(),
                    "a streaming task is a plain `fn`: its `send` waits for the reader, \
                     which would hold up every other call of an async worker",
                ));
            }
            sender = Some((arg_idents.len(), item.clone()));
            let arg = format_ident!("__knitting_arg{}", i);
            arg_wires.push(Wire::Plain);
            arg_types.push(ty.clone());
            call_exprs.push(quote!(#arg));
            arg_idents.push(arg);
        } else if let Some(elem) = lent_slice(ty) {
            // A slice parameter: the call carries a `Buffer` of it, and the
            // task borrows that buffer for the call.
            let arg = format_ident!("__knitting_arg{}", i);
            arg_types.push(syn::parse_quote!(::knitting::Buffer<#elem>));
            call_exprs.push(quote!(::knitting::Buffer::as_slice(&#arg)));
            arg_idents.push(arg);
            arg_wires.push(Wire::Lent);
        } else if let Some(value) = borrowed_value(ty) {
            // A parameter taken by reference: the call carries the value,
            // and the task borrows it for the call.
            let arg = format_ident!("__knitting_arg{}", i);
            arg_types.push(value.clone());
            call_exprs.push(quote!(&#arg));
            arg_idents.push(arg);
            arg_wires.push(Wire::Borrowed);
        } else {
            if let Some(span) = non_static_borrow(ty) {
                return Err(syn::Error::new(
                    span,
                    "a task's arguments move to a worker, so they cannot borrow from the caller: \
                     use an owned type (`String` instead of `&str`, `Vec<T>` instead of `&mut [T]`; \
                     a `&[T]` of plain numbers is lent: the caller passes a `knitting::Buffer<T>`)",
                ));
            }
            let arg = format_ident!("__knitting_arg{}", i);
            arg_wires.push(owned_wire(ty));
            arg_types.push(ty.clone());
            call_exprs.push(quote!(#arg));
            arg_idents.push(arg);
        }
    }
    let args_ty = match arg_types.len() {
        0 => quote!(()),
        1 => {
            let t = &arg_types[0];
            quote!(#t)
        }
        _ => quote!((#(#arg_types,)*)),
    };
    let args_pat = match arg_idents.len() {
        0 => quote!(()),
        1 => {
            let a = &arg_idents[0];
            quote!(#a)
        }
        _ => quote!((#(#arg_idents,)*)),
    };

    // A streaming task: how `Pool::stream` builds the arguments from the
    // other parameters and the sender it makes.
    let stream_impl = sender.as_ref().map(|(at, item)| {
        let input_types: Vec<&Type> = arg_types
            .iter()
            .enumerate()
            .filter(|(i, _)| i != at)
            .map(|(_, t)| t)
            .collect();
        let input_idents: Vec<&syn::Ident> = arg_idents
            .iter()
            .enumerate()
            .filter(|(i, _)| i != at)
            .map(|(_, a)| a)
            .collect();
        let input_ty = match input_types.len() {
            0 => quote!(()),
            1 => {
                let t = input_types[0];
                quote!(#t)
            }
            _ => quote!((#(#input_types,)*)),
        };
        let input_pat = match input_idents.len() {
            0 => quote!(()),
            1 => {
                let a = input_idents[0];
                quote!(#a)
            }
            _ => quote!((#(#input_idents,)*)),
        };
        let exprs: Vec<TokenStream2> = arg_idents
            .iter()
            .enumerate()
            .map(|(i, a)| {
                if i == *at {
                    quote!(__knitting_sender)
                } else {
                    quote!(#a)
                }
            })
            .collect();
        let args_expr = match exprs.len() {
            1 => exprs[0].clone(),
            _ => quote!((#(#exprs,)*)),
        };
        quote! {
            impl ::knitting::StreamTask for #ident {
                type Item = #item;
                type Input = #input_ty;

                fn with_sender(
                    #input_pat: Self::Input,
                    __knitting_sender: ::knitting::Sender<#item>,
                ) -> Self::Args {
                    #args_expr
                }
            }
        }
    });

    // The body's call: awaited in an async task's future.
    let body_call = if is_async {
        quote!(#body_ident(#(#call_exprs),*).await)
    } else {
        quote!(#body_ident(#(#call_exprs),*))
    };
    let (ret_ty, output_ty, run_body) = match &sig.output {
        ReturnType::Default => (
            quote!(()),
            quote!(()),
            quote!(::core::result::Result::Ok(#body_call)),
        ),
        ReturnType::Type(_, ty) if is_result(ty) => (
            quote!(#ty),
            quote!(<#ty as ::knitting::__private::TaskResult>::Ok),
            quote_spanned! {ty.span()=>
                match #body_call {
                    ::core::result::Result::Ok(value) => ::core::result::Result::Ok(value),
                    ::core::result::Result::Err(failure) => {
                        #[allow(unused_imports)]
                        use ::knitting::__private::{ViaBoxedError, ViaDisplay, ViaStdError};
                        ::core::result::Result::Err(
                            (&&::knitting::__private::Failure(&failure)).knitting_error(),
                        )
                    }
                }
            },
        ),
        ReturnType::Type(_, ty) => (
            quote!(#ty),
            quote!(#ty),
            quote!(::core::result::Result::Ok(#body_call)),
        ),
    };

    let name_expr = match &options.name {
        Some(lit) => quote!(#lit),
        None => {
            let name = LitStr::new(&ident.to_string(), Span::call_site());
            quote!(::core::concat!(::core::module_path!(), "::", #name))
        }
    };
    let signal_pat = if signal_seen {
        quote!(__knitting_signal)
    } else {
        quote!(_)
    };

    let args_wire = if arg_wires.iter().all(|w| *w == Wire::Plain) {
        Wire::Plain.adapter()
    } else if arg_wires.len() == 1 {
        arg_wires[0].adapter()
    } else {
        let adapters = arg_wires.iter().map(|w| w.adapter());
        quote!((#(#adapters,)*))
    };
    let output_wire = match &sig.output {
        ReturnType::Default => Wire::Plain,
        ReturnType::Type(_, ty) if is_result(ty) => result_ok(ty).map_or(Wire::Plain, owned_wire),
        ReturnType::Type(_, ty) => owned_wire(ty),
    }
    .adapter();

    let output_may_borrow = match &sig.output {
        ReturnType::Default => false,
        // Only the `Ok` type crosses; an error travels as text.
        ReturnType::Type(_, ty) if is_result(ty) => match &**ty {
            Type::Path(p) => match &p.path.segments.last().expect("a Result path").arguments {
                PathArguments::AngleBracketed(a) => a
                    .args
                    .iter()
                    .take(1)
                    .any(|g| matches!(g, GenericArgument::Type(t) if may_borrow(t))),
                _ => false,
            },
            _ => false,
        },
        ReturnType::Type(_, ty) => may_borrow(ty),
    };
    let borrows = output_may_borrow || arg_types.iter().any(may_borrow);
    // The conditions of `ProcessTask` that serde bounds cannot state.
    let owned_mark =
        (!borrows).then(|| quote!(impl ::knitting::__private::NoBorrowedTypes for #ident {}));
    let process_mark = (!options.threads_only)
        .then(|| quote!(impl ::knitting::__private::NotThreadsOnly for #ident {}));
    let entry_body = if options.threads_only || borrows {
        quote!(::core::option::Option::None)
    } else {
        quote! {
            #[allow(unused_imports)]
            use ::knitting::__private::{NoSerde, ViaSerde};
            (&&::knitting::__private::Probe::<#ident>::new()).knitting_entry()
        }
    };

    let timeouts = {
        let timeout = options.timeout.map(|n| quote!(.with_timeout(#n)));
        let hard = options.hard_timeout.map(|n| quote!(.with_hard_timeout(#n)));
        let inline = options.inline.then(|| quote!(.with_inline()));
        quote!(#timeout #hard #inline)
    };
    let timed_out = match (&options.default, &options.error) {
        (Some(value), _) => quote! {
            fn timed_out() -> ::core::result::Result<Self::Output, ::knitting::Error> {
                ::core::result::Result::Ok(::core::convert::Into::into(#value))
            }
        },
        (None, Some(error)) => quote! {
            fn timed_out() -> ::core::result::Result<Self::Output, ::knitting::Error> {
                #[allow(unused_imports)]
                use ::knitting::__private::{ViaBoxedError, ViaDisplay, ViaStdError};
                let error = #error;
                ::core::result::Result::Err(::knitting::__private::timed_out_with(
                    (&&::knitting::__private::Failure(&error)).knitting_error(),
                ))
            }
        },
        (None, None) => quote!(),
    };

    let inputs = &sig.inputs;
    let block = &func.block;
    let output = &sig.output;
    let asyncness = &sig.asyncness;
    let run_fns = if is_async {
        quote! {
            const ASYNC: bool = true;

            fn run(
                __knitting_args: Self::Args,
                __knitting_signal: &::knitting::Signal,
            ) -> ::core::result::Result<Self::Output, ::knitting::Error> {
                ::knitting::__private::block_on(<Self as ::knitting::Task>::run_async(
                    __knitting_args,
                    __knitting_signal,
                ))
            }

            fn run_async<'__knitting>(
                #args_pat: Self::Args,
                #signal_pat: &'__knitting ::knitting::Signal,
            ) -> ::knitting::__private::TaskFuture<'__knitting, Self::Output> {
                ::std::boxed::Box::pin(async move { #run_body })
            }
        }
    } else {
        quote! {
            #[inline]
            fn run(
                #args_pat: Self::Args,
                #signal_pat: &::knitting::Signal,
            ) -> ::core::result::Result<Self::Output, ::knitting::Error> {
                #run_body
            }
        }
    };
    // A sync task still calls as a plain function; an async one's future
    // has no nameable type for a function pointer.
    let local_call = (!is_async).then(|| {
        quote! {
            impl ::core::ops::Deref for #ident {
                type Target = fn(#(#fn_ptr_types),*) -> #ret_ty;

                fn deref(&self) -> &Self::Target {
                    static LOCAL: fn(#(#fn_ptr_types),*) -> #ret_ty = #body_ident;
                    &LOCAL
                }
            }
        }
    });
    let registry_ident = format_ident!("__KNITTING_TASK_{}", ident.to_string().to_uppercase());

    Ok(quote! {
        #(#attrs)*
        #[allow(non_camel_case_types)]
        #[derive(Clone, Copy, Debug, Default)]
        #vis struct #ident;

        const _: () = {
            #[allow(clippy::needless_pass_by_value, clippy::unused_async)]
            #asyncness fn #body_ident(#inputs) #output #block

            fn __knitting_entry() -> ::core::option::Option<::knitting::__private::WorkerEntry> {
                #entry_body
            }

            static __KNITTING_INFO: ::knitting::TaskInfo = ::knitting::__private::task_info(
                #name_expr,
                ::core::file!(),
                ::core::line!(),
                __knitting_entry,
            )
            #timeouts;

            #owned_mark
            #process_mark

            #[::knitting::__private::linkme::distributed_slice(::knitting::__private::TASKS)]
            #[linkme(crate = ::knitting::__private::linkme)]
            static #registry_ident: &'static ::knitting::TaskInfo = &__KNITTING_INFO;

            // SAFETY: `run` hands the task only a borrow of each argument
            // read through `Lent` or `Borrowed`, and drops them all before
            // it returns (an async task: before its future is dropped).
            unsafe impl ::knitting::__private::Wired for #ident {
                type ArgsWire = #args_wire;
                type OutputWire = #output_wire;
            }

            impl ::knitting::Task for #ident {
                type Args = #args_ty;
                type Output = #output_ty;

                fn info(&self) -> &::knitting::TaskInfo {
                    &__KNITTING_INFO
                }

                #timed_out

                #run_fns
            }

            #local_call

            #stream_impl
        };
    })
}
