"""Predictions -> COCO results -> metrics: rescoring, OKS-NMS, COCOeval, gathering across ranks."""
