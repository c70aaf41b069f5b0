//! Tensors across the boundary: ours to tract's and back.

use tract_onnx::prelude::{DatumType, Tensor as TractTensor};

use crate::error::Error;
use crate::tensor::{with_array, ElementType, Tensor};

/// tract's datum type for one of our element types.
pub(crate) fn datum_type(ty: ElementType) -> DatumType {
    match ty {
        ElementType::F16 => DatumType::F16,
        ElementType::F32 => DatumType::F32,
        ElementType::F64 => DatumType::F64,
        ElementType::I8 => DatumType::I8,
        ElementType::I16 => DatumType::I16,
        ElementType::I32 => DatumType::I32,
        ElementType::I64 => DatumType::I64,
        ElementType::U8 => DatumType::U8,
        ElementType::U16 => DatumType::U16,
        ElementType::U32 => DatumType::U32,
        ElementType::U64 => DatumType::U64,
        ElementType::Bool => DatumType::Bool,
        ElementType::String => DatumType::String,
    }
}

/// Converts one of our tensors to tract's.
pub(crate) fn to_tract(tensor: Tensor) -> TractTensor {
    with_array!(tensor, a => TractTensor::from(a))
}

/// Converts a tract tensor to ours; quantized integers come back as their storage type.
pub(crate) fn from_tract(tensor: TractTensor, name: &str) -> Result<Tensor, Error> {
    let err = |e: tract_onnx::prelude::TractError| Error::Output {
        name: name.to_owned(),
        reason: e.to_string(),
    };
    let tensor = match tensor.datum_type() {
        DatumType::QU8(_) => tensor.cast_to_dt(DatumType::U8).map_err(err)?.into_owned(),
        DatumType::QI8(_) => tensor.cast_to_dt(DatumType::I8).map_err(err)?.into_owned(),
        DatumType::QI32(_) => tensor.cast_to_dt(DatumType::I32).map_err(err)?.into_owned(),
        _ => tensor,
    };
    Ok(match tensor.datum_type() {
        DatumType::F16 => Tensor::F16(tensor.into_plain_array().map_err(err)?),
        DatumType::F32 => Tensor::F32(tensor.into_plain_array().map_err(err)?),
        DatumType::F64 => Tensor::F64(tensor.into_plain_array().map_err(err)?),
        DatumType::I8 => Tensor::I8(tensor.into_plain_array().map_err(err)?),
        DatumType::I16 => Tensor::I16(tensor.into_plain_array().map_err(err)?),
        DatumType::I32 => Tensor::I32(tensor.into_plain_array().map_err(err)?),
        DatumType::I64 => Tensor::I64(tensor.into_plain_array().map_err(err)?),
        DatumType::U8 => Tensor::U8(tensor.into_plain_array().map_err(err)?),
        DatumType::U16 => Tensor::U16(tensor.into_plain_array().map_err(err)?),
        DatumType::U32 => Tensor::U32(tensor.into_plain_array().map_err(err)?),
        DatumType::U64 => Tensor::U64(tensor.into_plain_array().map_err(err)?),
        DatumType::Bool => Tensor::Bool(tensor.into_plain_array().map_err(err)?),
        DatumType::String => Tensor::String(tensor.into_plain_array().map_err(err)?),
        DatumType::TDim => {
            let cast = tensor.cast_to_dt(DatumType::I64).map_err(err)?.into_owned();
            Tensor::I64(cast.into_plain_array().map_err(err)?)
        }
        other => {
            return Err(Error::Output {
                name: name.to_owned(),
                reason: format!("tract produced element type {other:?}, which is not supported"),
            })
        }
    })
}
