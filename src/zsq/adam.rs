//! Adam (Kingma & Ba 2015) on the host: the parameters are the images, a few hundred
//! thousand values, so the update costs microseconds next to a gradient evaluation.

/// Adam's moment estimates for one parameter vector.
#[derive(Debug, Clone)]
pub(crate) struct Adam {
    beta1: f32,
    beta2: f32,
    epsilon: f32,
    m: Vec<f32>,
    v: Vec<f32>,
    step: i32,
}

impl Adam {
    pub(crate) fn new(len: usize) -> Self {
        Adam {
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
            m: vec![0.0; len],
            v: vec![0.0; len],
            step: 0,
        }
    }

    /// One step of size `lr` against `grad`.
    pub(crate) fn step(&mut self, params: &mut [f32], grad: &[f32], lr: f32) {
        self.step += 1;
        let c1 = 1.0 - self.beta1.powi(self.step);
        let c2 = 1.0 - self.beta2.powi(self.step);
        let step = lr / c1;
        let (b1, b2, eps) = (self.beta1, self.beta2, self.epsilon);
        for (((p, &g), m), v) in params
            .iter_mut()
            .zip(grad)
            .zip(&mut self.m)
            .zip(&mut self.v)
        {
            *m = b1 * *m + (1.0 - b1) * g;
            *v = b2 * *v + (1.0 - b2) * g * g;
            *p -= step * *m / ((*v / c2).sqrt() + eps);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_step_moves_each_parameter_by_the_learning_rate() {
        // Bias correction makes the first step exactly lr·sign(g) (up to epsilon).
        let mut adam = Adam::new(3);
        let mut p = [1.0f32, 1.0, 1.0];
        adam.step(&mut p, &[0.5, -2.0, 1e-3], 0.1);
        for (got, want) in p.iter().zip([0.9f32, 1.1, 0.9]) {
            assert!((got - want).abs() < 1e-4, "{got} vs {want}");
        }
    }

    #[test]
    fn minimises_a_quadratic() {
        let mut adam = Adam::new(2);
        let mut p = [3.0f32, -2.0];
        for _ in 0..500 {
            let g = [2.0 * (p[0] - 1.0), 2.0 * (p[1] + 0.5)];
            adam.step(&mut p, &g, 0.05);
        }
        assert!(
            (p[0] - 1.0).abs() < 1e-2 && (p[1] + 0.5).abs() < 1e-2,
            "{p:?}"
        );
    }
}
