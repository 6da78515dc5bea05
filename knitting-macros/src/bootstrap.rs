//! The expansion of `#[bootstrap]`: a marker type that names the function,
//! its registry entry, and a runner that decodes the data and converts the
//! outcome; everything else is in `knitting::__private`.

use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote, quote_spanned};
use syn::{
    parse::Parser, punctuated::Punctuated, spanned::Spanned, FnArg, ItemFn, LitStr, Meta,
    ReturnType, Token, Type,
};

/// `&BootContext` (any path ending in `BootContext`).
fn is_context_ref(ty: &Type) -> bool {
    match ty {
        Type::Reference(r) if r.mutability.is_none() => match &*r.elem {
            Type::Path(p) => p
                .path
                .segments
                .last()
                .is_some_and(|s| s.ident == "BootContext"),
            _ => false,
        },
        _ => false,
    }
}

fn parse_name(attr: TokenStream2) -> syn::Result<Option<LitStr>> {
    let mut name = None;
    for meta in Punctuated::<Meta, Token![,]>::parse_terminated.parse2(attr)? {
        let known = "the known option is `name = \"...\"`";
        let Meta::NameValue(nv) = &meta else {
            return Err(syn::Error::new(meta.span(), known));
        };
        if !nv.path.is_ident("name") {
            return Err(syn::Error::new(nv.path.span(), known));
        }
        let s = super::string_value(nv, "name")?;
        if s.value().is_empty() {
            return Err(syn::Error::new(s.span(), "`name` must not be empty"));
        }
        name = Some(s);
    }
    Ok(name)
}

pub(crate) fn expand(attr: TokenStream2, item: TokenStream2) -> syn::Result<TokenStream2> {
    let name = parse_name(attr)?;
    let func: ItemFn = syn::parse2(item)?;
    let sig = &func.sig;
    if sig.asyncness.is_some()
        || sig.unsafety.is_some()
        || sig.variadic.is_some()
        || !sig.generics.params.is_empty()
        || sig.generics.where_clause.is_some()
    {
        return Err(syn::Error::new(
            sig.span(),
            "#[knitting::bootstrap] takes a plain, non-generic, non-async, safe function",
        ));
    }
    let (vis, ident, attrs) = (&func.vis, &sig.ident, &func.attrs);
    let mut data_ty: Option<Type> = None;
    let mut context_seen = false;
    let mut call_exprs = Vec::new();
    let mut fn_ptr_types = Vec::new();
    for input in &sig.inputs {
        let FnArg::Typed(pat_ty) = input else {
            return Err(syn::Error::new(
                input.span(),
                "#[knitting::bootstrap] goes on free functions, not methods",
            ));
        };
        let ty = &*pat_ty.ty;
        fn_ptr_types.push(quote!(#ty));
        if is_context_ref(ty) && !context_seen {
            context_seen = true;
            call_exprs.push(quote!(__knitting_ctx));
        } else if data_ty.is_none() && !matches!(ty, Type::Reference(_)) {
            data_ty = Some(ty.clone());
            call_exprs.push(quote!(__knitting_data));
        } else {
            return Err(syn::Error::new(
                ty.span(),
                "a bootstrap takes its data (one owned serde value) and/or a \
                 `&knitting::BootContext`, nothing else",
            ));
        }
    }
    let data_ty = data_ty.map_or_else(|| quote!(()), |t| quote!(#t));
    let (ret_ty, run_body) = match &sig.output {
        ReturnType::Default => (
            quote!(()),
            quote! {
                __knitting_boot_body(#(#call_exprs),*);
                ::core::result::Result::Ok(())
            },
        ),
        ReturnType::Type(_, ty) if super::is_result(ty) => (
            quote!(#ty),
            quote_spanned! {ty.span()=>
                match __knitting_boot_body(#(#call_exprs),*) {
                    ::core::result::Result::Ok(_) => ::core::result::Result::Ok(()),
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
        ReturnType::Type(_, ty) => {
            return Err(syn::Error::new(
                ty.span(),
                "a bootstrap returns `()` or `Result<(), E>`",
            ))
        }
    };
    let name_expr = match &name {
        Some(lit) => quote!(#lit),
        None => {
            let name = LitStr::new(&ident.to_string(), Span::call_site());
            quote!(::core::concat!(::core::module_path!(), "::", #name))
        }
    };
    let (inputs, output, block) = (&sig.inputs, &sig.output, &func.block);
    let registry_ident = format_ident!("__KNITTING_BOOT_{}", ident.to_string().to_uppercase());
    Ok(quote! {
        #(#attrs)*
        #[allow(non_camel_case_types)]
        #[derive(Clone, Copy, Debug, Default)]
        #vis struct #ident;

        const _: () = {
            #[allow(clippy::needless_pass_by_value)]
            fn __knitting_boot_body(#inputs) #output #block

            fn __knitting_boot_run(
                __knitting_bytes: &[u8],
                __knitting_ctx: &::knitting::BootContext,
            ) -> ::core::result::Result<(), ::knitting::Error> {
                let _ = __knitting_ctx;
                let __knitting_data: #data_ty =
                    ::knitting::__private::boot_data(__knitting_bytes)?;
                let _ = &__knitting_data;
                #run_body
            }

            static __KNITTING_BOOT: ::knitting::BootInfo = ::knitting::__private::boot_info(
                #name_expr,
                ::core::file!(),
                ::core::line!(),
                __knitting_boot_run,
            );

            #[::knitting::__private::linkme::distributed_slice(::knitting::__private::BOOTSTRAPS)]
            #[linkme(crate = ::knitting::__private::linkme)]
            static #registry_ident: &'static ::knitting::BootInfo = &__KNITTING_BOOT;

            impl ::knitting::Bootstrap for #ident {
                type Data = #data_ty;

                fn info(&self) -> &'static ::knitting::BootInfo {
                    &__KNITTING_BOOT
                }
            }

            impl ::core::ops::Deref for #ident {
                type Target = fn(#(#fn_ptr_types),*) -> #ret_ty;

                fn deref(&self) -> &Self::Target {
                    static LOCAL: fn(#(#fn_ptr_types),*) -> #ret_ty = __knitting_boot_body;
                    &LOCAL
                }
            }
        };
    })
}
