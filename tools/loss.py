"""Detection loss: task-aligned assignment (TOOD, Feng et al. 2021) + BCE classification
+ CIoU box loss + distribution focal loss (GFL, Li et al. 2020), as YOLOv8 combines them.
Written from the papers' descriptions."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from model import make_anchors


def box_iou_pairwise(a: torch.Tensor, b: torch.Tensor, ciou: bool = False, eps: float = 1e-7):
    """IoU (or CIoU) of boxes a and b (x1y1x2y2), broadcast over leading dims."""
    ax1, ay1, ax2, ay2 = a.unbind(-1)
    bx1, by1, bx2, by2 = b.unbind(-1)
    iw = (torch.min(ax2, bx2) - torch.max(ax1, bx1)).clamp(0)
    ih = (torch.min(ay2, by2) - torch.max(ay1, by1)).clamp(0)
    inter = iw * ih
    wa, ha = ax2 - ax1, ay2 - ay1 + eps
    wb, hb = bx2 - bx1, by2 - by1 + eps
    union = wa * ha + wb * hb - inter + eps
    iou = inter / union
    if not ciou:
        return iou
    cw = torch.max(ax2, bx2) - torch.min(ax1, bx1)
    ch = torch.max(ay2, by2) - torch.min(ay1, by1)
    c2 = cw ** 2 + ch ** 2 + eps
    rho2 = ((bx1 + bx2 - ax1 - ax2) ** 2 + (by1 + by2 - ay1 - ay2) ** 2) / 4
    v = (4 / math.pi ** 2) * (torch.atan(wb / hb) - torch.atan(wa / ha)).pow(2)
    with torch.no_grad():
        alpha = v / (v - iou + (1 + eps))
    return iou - (rho2 / c2 + v * alpha)


class TaskAlignedAssigner:
    """For each ground truth: candidates = anchors whose centre lies inside it (plus the
    stride-8 anchor nearest its centre, so tiny objects always get one); alignment
    t = score^alpha * IoU^beta; the top-k candidates by t become positives; an anchor
    claimed by several truths keeps the one it overlaps most. Soft targets: t normalised
    per truth so that its best anchor gets that anchor's IoU."""

    def __init__(self, topk: int = 10, alpha: float = 0.5, beta: float = 6.0, eps: float = 1e-9):
        self.topk, self.alpha, self.beta, self.eps = topk, alpha, beta, eps

    @torch.no_grad()
    def __call__(self, pd_scores, pd_bboxes, anc_points, anc_strides, gt_labels, gt_bboxes, mask_gt):
        """pd_scores (b,A,nc) sigmoid; pd_bboxes (b,A,4) px; anc_points (A,2) px; anc_strides (A,);
        gt_labels (b,M) long; gt_bboxes (b,M,4) px; mask_gt (b,M) bool.
        returns target_labels (b,A), target_bboxes (b,A,4), target_scores (b,A,nc), fg_mask (b,A)"""
        b, A, nc = pd_scores.shape
        M = gt_bboxes.shape[1]
        dev = pd_scores.device
        if M == 0:
            return (torch.zeros(b, A, dtype=torch.long, device=dev), torch.zeros(b, A, 4, device=dev),
                    torch.zeros(b, A, nc, device=dev), torch.zeros(b, A, dtype=torch.bool, device=dev))
        # candidates: centre inside the box
        lt = anc_points.view(1, 1, A, 2) - gt_bboxes[..., :2].unsqueeze(2)
        rb = gt_bboxes[..., 2:].unsqueeze(2) - anc_points.view(1, 1, A, 2)
        in_gt = torch.cat((lt, rb), -1).amin(-1) > self.eps  # (b,M,A)
        # plus the nearest stride-8 anchor to the centre
        fine = (anc_strides == anc_strides.min()).nonzero().squeeze(1)
        ctr = (gt_bboxes[..., :2] + gt_bboxes[..., 2:]) / 2  # (b,M,2)
        d = (ctr.unsqueeze(2) - anc_points[fine].view(1, 1, -1, 2)).pow(2).sum(-1)  # (b,M,F)
        nearest = fine[d.argmin(-1)]  # (b,M)
        in_gt.scatter_(2, nearest.unsqueeze(-1), True)
        in_gt &= mask_gt.unsqueeze(-1)

        # alignment metric
        bidx = torch.arange(b, device=dev).view(b, 1).expand(b, M)
        scores = pd_scores[bidx, :, gt_labels.clamp(min=0)]  # (b,M,A)
        ious = box_iou_pairwise(gt_bboxes.unsqueeze(2), pd_bboxes.unsqueeze(1)).clamp(0)  # (b,M,A)
        ious = ious * in_gt
        align = scores.pow(self.alpha) * ious.pow(self.beta) * in_gt

        k = min(self.topk, A)
        topv, topi = align.topk(k, dim=-1)
        topmask = torch.zeros_like(in_gt)
        topmask.scatter_(2, topi, True)
        # when a truth has fewer than k candidates its zero-metric picks are dropped by in_gt
        mask_pos = topmask & in_gt  # (b,M,A)

        # one truth per anchor: the highest IoU
        fg_count = mask_pos.sum(1)  # (b,A)
        if (fg_count > 1).any():
            multi = (fg_count > 1).unsqueeze(1).expand(-1, M, -1)
            best = ious.argmax(1)  # (b,A)
            is_best = torch.zeros_like(mask_pos)
            is_best.scatter_(1, best.unsqueeze(1), True)
            mask_pos = torch.where(multi, is_best & in_gt, mask_pos)
        fg_mask = mask_pos.any(1)  # (b,A)
        tgt_idx = mask_pos.float().argmax(1)  # (b,A)

        flat = tgt_idx + (torch.arange(b, device=dev) * M).view(b, 1)
        target_labels = gt_labels.flatten()[flat].clamp(min=0)  # (b,A)
        target_bboxes = gt_bboxes.view(-1, 4)[flat]  # (b,A,4)
        target_scores = F.one_hot(target_labels, nc).float() * fg_mask.unsqueeze(-1)

        # soft targets
        align = align * mask_pos
        pos_align_max = align.amax(-1, keepdim=True)  # (b,M,1)
        pos_iou_max = (ious * mask_pos).amax(-1, keepdim=True)
        norm = (align * pos_iou_max / (pos_align_max + self.eps)).amax(1).unsqueeze(-1)  # (b,A,1)
        target_scores = target_scores * norm
        return target_labels, target_bboxes, target_scores, fg_mask


class DetLoss:
    def __init__(self, model, box: float = 7.5, cls: float = 0.5, dfl: float = 1.5, topk: int = 10):
        det = model.detect
        self.nc, self.reg_max = det.nc, det.reg_max
        self.strides = det.stride.tolist()
        self.w_box, self.w_cls, self.w_dfl = box, cls, dfl
        self.assigner = TaskAlignedAssigner(topk=topk)
        self.proj = torch.arange(self.reg_max, dtype=torch.float32)

    def __call__(self, feats, targets):
        """feats: list of (b, 4*reg_max+nc, h, w); targets (n,6) [bi, cls, x1,y1,x2,y2] input px."""
        b = feats[0].shape[0]
        no = self.nc + 4 * self.reg_max
        x = torch.cat([f.view(b, no, -1) for f in feats], 2).permute(0, 2, 1)  # (b,A,no)
        pd_dist, pd_logits = x.split((4 * self.reg_max, self.nc), -1)
        anc, st = make_anchors([tuple(f.shape[2:]) for f in feats], self.strides, x.dtype, x.device)
        # decode in grid units
        A = anc.shape[0]
        prob = pd_dist.view(b, A, 4, self.reg_max).softmax(-1)
        dist = prob @ self.proj.to(x.device, x.dtype)  # (b,A,4) ltrb
        pd_boxes = torch.cat((anc - dist[..., :2], anc + dist[..., 2:]), -1)  # grid units

        # pad targets to (b, M, ...)
        n = targets.shape[0]
        if n:
            bi = targets[:, 0].long()
            counts = torch.bincount(bi, minlength=b)
            M = int(counts.max())
            gt = torch.zeros(b, M, 5)
            mask_gt = torch.zeros(b, M, dtype=torch.bool)
            slot = torch.zeros(n, dtype=torch.long)
            seen = torch.zeros(b, dtype=torch.long)
            for i in range(n):  # n is small (objects in one batch)
                slot[i] = seen[bi[i]]
                seen[bi[i]] += 1
            gt[bi, slot] = targets[:, 1:]
            mask_gt[bi, slot] = True
        else:
            gt = torch.zeros(b, 0, 5)
            mask_gt = torch.zeros(b, 0, dtype=torch.bool)
        # built on the CPU (targets stay there; the loop above is cheap there), then moved
        gt, mask_gt = gt.to(x.device), mask_gt.to(x.device)
        gt_labels, gt_bboxes = gt[..., 0].long(), gt[..., 1:]

        stp = st.squeeze(1)
        t_labels, t_bboxes, t_scores, fg = self.assigner(
            pd_logits.detach().sigmoid(), (pd_boxes.detach() * st).to(gt_bboxes.dtype),
            anc * st, stp, gt_labels, gt_bboxes, mask_gt)
        tss = max(float(t_scores.sum()), 1.0)

        loss_cls = F.binary_cross_entropy_with_logits(pd_logits, t_scores.to(pd_logits.dtype), reduction="sum") / tss
        if fg.any():
            w = t_scores.sum(-1)[fg]  # (P,)
            tb = t_bboxes / st  # grid units
            ciou = box_iou_pairwise(pd_boxes[fg], tb[fg], ciou=True)
            loss_box = ((1.0 - ciou) * w).sum() / tss
            # DFL
            anc_fg = anc.unsqueeze(0).expand(b, -1, -1)[fg]
            tgt = torch.cat((anc_fg - tb[fg][:, :2], tb[fg][:, 2:] - anc_fg), -1).clamp(0, self.reg_max - 1 - 0.01)
            tl = tgt.long()
            wl = tl + 1 - tgt
            logits = pd_dist[fg].view(-1, 4, self.reg_max)
            ce_l = F.cross_entropy(logits.reshape(-1, self.reg_max), tl.view(-1), reduction="none").view(-1, 4)
            ce_r = F.cross_entropy(logits.reshape(-1, self.reg_max), (tl + 1).view(-1), reduction="none").view(-1, 4)
            dfl = (ce_l * wl + ce_r * (1 - wl)).mean(-1)
            loss_dfl = (dfl * w).sum() / tss
        else:
            loss_box = pd_dist.sum() * 0.0
            loss_dfl = pd_dist.sum() * 0.0
        total = self.w_box * loss_box + self.w_cls * loss_cls + self.w_dfl * loss_dfl
        return total, torch.stack((loss_box.detach(), loss_cls.detach(), loss_dfl.detach()))
