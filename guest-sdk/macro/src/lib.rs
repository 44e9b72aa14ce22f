//! The `#[trellis_guest::function]` attribute. Use it through `trellis_guest`, which
//! re-exports it and documents it; the expansion refers to `::trellis_guest`.

#![deny(missing_docs)]

use proc_macro::TokenStream;
use proc_macro2::TokenStream as TokenStream2;
use quote::{ToTokens, quote};
use syn::{Error, FnArg, GenericParam, ItemFn, ReturnType, Signature, Type};

/// Turns `fn(params: T) -> Result<U, E>` or
/// `fn(params: T, invocation: &Invocation) -> Result<U, E>` into the component's
/// `handler` export. See `trellis_guest::function`.
#[proc_macro_attribute]
pub fn function(attr: TokenStream, item: TokenStream) -> TokenStream {
    let item = syn::parse_macro_input!(item as ItemFn);
    match expand(attr.into(), &item) {
        Ok(tokens) => tokens.into(),
        // Keep the function itself so that a signature error is the only error shown,
        // not followed by "cannot find function" wherever it is called.
        Err(err) => {
            let mut tokens = err.to_compile_error();
            item.to_tokens(&mut tokens);
            tokens.into()
        }
    }
}

/// The handler's shape, as far as the expansion needs it.
struct Handler<'a> {
    params: &'a Type,
    output: &'a Type,
    takes_invocation: bool,
}

fn expand(attr: TokenStream2, item: &ItemFn) -> syn::Result<TokenStream2> {
    if !attr.is_empty() {
        return Err(Error::new_spanned(
            attr,
            "`#[trellis_guest::function]` takes no arguments",
        ));
    }
    let Handler {
        params,
        output,
        takes_invocation,
    } = check_signature(&item.sig)?;

    let name = &item.sig.ident;
    // The local names are prefixed so that they cannot shadow the author's function,
    // which may well be called `params`.
    let handler = if takes_invocation {
        quote!(|__trellis_params, __trellis_invocation| #name(__trellis_params, __trellis_invocation))
    } else {
        quote!(|__trellis_params, _| #name(__trellis_params))
    };

    // Everything generated lives in an anonymous const so that nothing but the
    // component exports leaks into the author's namespace.
    Ok(quote! {
        #item

        const _: () = {
            struct __TrellisFunction;

            impl ::trellis_guest::__private::Guest for __TrellisFunction {
                fn handle(
                    __trellis_invocation: ::trellis_guest::__private::WitInvocation,
                    __trellis_params: ::std::string::String,
                ) -> ::core::result::Result<
                    ::std::string::String,
                    ::trellis_guest::__private::FunctionError,
                > {
                    ::trellis_guest::__private::run::<#params, #output, _>(
                        __trellis_invocation,
                        __trellis_params,
                        #handler,
                    )
                }
            }

            ::trellis_guest::__private::export!(
                __TrellisFunction with_types_in ::trellis_guest::__private::bindings
            );
        };
    })
}

fn check_signature(sig: &Signature) -> syn::Result<Handler<'_>> {
    const SHAPE: &str = "expected `fn(params: T) -> Result<U, E>` or \
                         `fn(params: T, invocation: &trellis_guest::Invocation) -> Result<U, E>`";

    if let Some(asyncness) = &sig.asyncness {
        return Err(Error::new_spanned(
            asyncness,
            "a Trellis function cannot be `async`: the handler export is synchronous",
        ));
    }
    if let Some(unsafety) = &sig.unsafety {
        return Err(Error::new_spanned(
            unsafety,
            "a Trellis function cannot be `unsafe`: the host calls it with any params",
        ));
    }
    if let Some(abi) = &sig.abi {
        return Err(Error::new_spanned(
            abi,
            "a Trellis function cannot declare an ABI: the attribute generates the export",
        ));
    }
    // Lifetimes are harmless (`invocation: &'a Invocation`); types must be concrete
    // because the export deserializes and serializes them.
    if let Some(param) = sig
        .generics
        .params
        .iter()
        .find(|param| !matches!(param, GenericParam::Lifetime(_)))
    {
        return Err(Error::new_spanned(
            param,
            "a Trellis function cannot be generic: the export needs concrete params and output types",
        ));
    }

    let mut inputs = sig.inputs.iter();
    let params = match inputs.next() {
        Some(FnArg::Typed(params)) => &params.ty,
        Some(FnArg::Receiver(receiver)) => {
            return Err(Error::new_spanned(
                receiver,
                "a Trellis function must be a free function, not a method",
            ));
        }
        None => {
            return Err(Error::new(
                sig.paren_token.span.join(),
                format!("a Trellis function takes its params as the first parameter: {SHAPE}"),
            ));
        }
    };
    let takes_invocation = match inputs.next() {
        None => false,
        Some(FnArg::Typed(invocation)) if matches!(&*invocation.ty, Type::Reference(r) if r.mutability.is_none()) => {
            true
        }
        Some(other) => {
            return Err(Error::new_spanned(
                other,
                "the second parameter must be `&trellis_guest::Invocation`",
            ));
        }
    };
    if let Some(extra) = inputs.next() {
        return Err(Error::new_spanned(extra, format!("too many parameters: {SHAPE}")));
    }

    let output = match &sig.output {
        ReturnType::Type(_, output) => &**output,
        ReturnType::Default => {
            return Err(Error::new_spanned(
                sig,
                format!("a Trellis function must return `Result<U, E>`: {SHAPE}"),
            ));
        }
    };

    Ok(Handler {
        params,
        output,
        takes_invocation,
    })
}
