//! Constructors for new nodes, attributes and value types (the pieces graph surgery
//! adds), filled in the way the `onnx` Python helpers fill them.

use super::proto::{
    AttributeProto, AttributeType, DataType, DimValue, Dimension, GraphProto, NodeProto,
    TensorProto, TensorShapeProto, TensorType, TypeProto, TypeValue, ValueInfoProto,
};

impl AttributeProto {
    fn typed(name: &str, kind: AttributeType) -> Self {
        AttributeProto {
            name: Some(name.to_string()),
            r#type: Some(kind as i32),
            ..AttributeProto::default()
        }
    }

    pub fn float(name: &str, value: f32) -> Self {
        AttributeProto {
            f: Some(value),
            ..Self::typed(name, AttributeType::Float)
        }
    }

    pub fn int(name: &str, value: i64) -> Self {
        AttributeProto {
            i: Some(value),
            ..Self::typed(name, AttributeType::Int)
        }
    }

    pub fn string(name: &str, value: impl Into<Vec<u8>>) -> Self {
        AttributeProto {
            s: Some(value.into()),
            ..Self::typed(name, AttributeType::String)
        }
    }

    pub fn tensor(name: &str, value: TensorProto) -> Self {
        AttributeProto {
            t: Some(Box::new(value)),
            ..Self::typed(name, AttributeType::Tensor)
        }
    }

    pub fn graph(name: &str, value: GraphProto) -> Self {
        AttributeProto {
            g: Some(Box::new(value)),
            ..Self::typed(name, AttributeType::Graph)
        }
    }

    pub fn floats(name: &str, values: impl IntoIterator<Item = f32>) -> Self {
        AttributeProto {
            floats: values.into_iter().collect(),
            ..Self::typed(name, AttributeType::Floats)
        }
    }

    pub fn ints(name: &str, values: impl IntoIterator<Item = i64>) -> Self {
        AttributeProto {
            ints: values.into_iter().collect(),
            ..Self::typed(name, AttributeType::Ints)
        }
    }

    pub fn strings<S: Into<Vec<u8>>>(name: &str, values: impl IntoIterator<Item = S>) -> Self {
        AttributeProto {
            strings: values.into_iter().map(Into::into).collect(),
            ..Self::typed(name, AttributeType::Strings)
        }
    }
}

impl TypeProto {
    /// A tensor type; `dims` of `None` leaves the rank open, and a negative entry is
    /// an axis of unknown size.
    pub fn tensor(elem_type: DataType, dims: Option<&[i64]>) -> Self {
        let shape = dims.map(|dims| TensorShapeProto {
            dim: dims
                .iter()
                .map(|&d| Dimension {
                    value: (d >= 0).then_some(DimValue::Value(d)),
                    ..Dimension::default()
                })
                .collect(),
            ..TensorShapeProto::default()
        });
        TypeProto {
            value: Some(TypeValue::Tensor(TensorType {
                elem_type: Some(elem_type as i32),
                shape,
                ..TensorType::default()
            })),
            ..TypeProto::default()
        }
    }
}

impl ValueInfoProto {
    /// A tensor value's declaration (see [`TypeProto::tensor`] for `dims`).
    pub fn tensor(name: &str, elem_type: DataType, dims: Option<&[i64]>) -> Self {
        ValueInfoProto {
            name: Some(name.to_string()),
            r#type: Some(TypeProto::tensor(elem_type, dims)),
            ..ValueInfoProto::default()
        }
    }
}

/// Builds a [`NodeProto`]:
///
/// ```
/// use thermalzsq::onnx::NodeBuilder;
///
/// let conv = NodeBuilder::new("ConvTranspose")
///     .name("grad/conv1")
///     .inputs(["dy", "conv1.weight"])
///     .output("dx")
///     .attr_ints("strides", [2, 2])
///     .attr_ints("pads", [1, 1, 1, 1])
///     .attr_int("group", 1)
///     .build();
/// assert_eq!(conv.attr_ints("strides"), Some(&[2i64, 2][..]));
/// ```
#[derive(Debug, Clone)]
pub struct NodeBuilder {
    node: NodeProto,
}

impl NodeBuilder {
    pub fn new(op_type: &str) -> Self {
        NodeBuilder {
            node: NodeProto {
                op_type: Some(op_type.to_string()),
                ..NodeProto::default()
            },
        }
    }

    pub fn name(mut self, name: &str) -> Self {
        self.node.name = Some(name.to_string());
        self
    }

    /// The operator domain (leave unset for the default ONNX domain).
    pub fn domain(mut self, domain: &str) -> Self {
        self.node.domain = Some(domain.to_string());
        self
    }

    /// Appends an input; `""` marks an omitted optional input.
    pub fn input(mut self, name: &str) -> Self {
        self.node.input.push(name.to_string());
        self
    }

    pub fn inputs<S: AsRef<str>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.node
            .input
            .extend(names.into_iter().map(|s| s.as_ref().to_string()));
        self
    }

    pub fn output(mut self, name: &str) -> Self {
        self.node.output.push(name.to_string());
        self
    }

    pub fn outputs<S: AsRef<str>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.node
            .output
            .extend(names.into_iter().map(|s| s.as_ref().to_string()));
        self
    }

    pub fn attr(mut self, attribute: AttributeProto) -> Self {
        self.node.attribute.push(attribute);
        self
    }

    pub fn attrs(mut self, attributes: impl IntoIterator<Item = AttributeProto>) -> Self {
        self.node.attribute.extend(attributes);
        self
    }

    pub fn attr_int(self, name: &str, value: i64) -> Self {
        self.attr(AttributeProto::int(name, value))
    }

    pub fn attr_ints(self, name: &str, values: impl IntoIterator<Item = i64>) -> Self {
        self.attr(AttributeProto::ints(name, values))
    }

    pub fn attr_float(self, name: &str, value: f32) -> Self {
        self.attr(AttributeProto::float(name, value))
    }

    pub fn attr_floats(self, name: &str, values: impl IntoIterator<Item = f32>) -> Self {
        self.attr(AttributeProto::floats(name, values))
    }

    pub fn attr_string(self, name: &str, value: &str) -> Self {
        self.attr(AttributeProto::string(name, value))
    }

    pub fn attr_tensor(self, name: &str, value: TensorProto) -> Self {
        self.attr(AttributeProto::tensor(name, value))
    }

    pub fn build(self) -> NodeProto {
        self.node
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_carry_their_type() {
        let node = NodeBuilder::new("Clip")
            .attr_float("alpha", 0.5)
            .attr_floats("scales", [1.0, 2.0])
            .attr_string("mode", "nearest")
            .attr_tensor("value", TensorProto::scalar("v", 1i64))
            .build();
        let types: Vec<_> = node.attribute.iter().map(|a| a.attribute_type()).collect();
        use AttributeType::*;
        assert_eq!(
            types,
            [Some(Float), Some(Floats), Some(String), Some(Tensor)]
        );
        assert_eq!(node.attr_str("mode"), Some("nearest"));
        assert_eq!(node.attr_float("alpha"), Some(0.5));
        assert_eq!(node.attr_tensor("value").map(|t| t.name()), Some("v"));
    }

    #[test]
    fn tensor_types_mark_unknown_axes() {
        let vi = ValueInfoProto::tensor("x", DataType::Float, Some(&[-1, 3, 64, 64]));
        let shape = vi.r#type.as_ref().and_then(TypeProto::shape).unwrap();
        assert_eq!(shape.dim[0].value, None);
        assert_eq!(shape.static_dims(), None);
        assert_eq!(shape.dim[1].value, Some(DimValue::Value(3)));
    }
}
