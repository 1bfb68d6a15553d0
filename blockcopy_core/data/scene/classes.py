"""The Cityscapes trainIds the street scene paints (the classes a model can learn from it)."""

ROAD, SIDEWALK, BUILDING, POLE, TRAFFIC_LIGHT, TRAFFIC_SIGN, VEGETATION, TERRAIN, SKY = 0, 1, 2, 5, 6, 7, 8, 9, 10
PERSON, RIDER, CAR, MOTORCYCLE, BICYCLE = 11, 12, 13, 17, 18

__all__ = ["ROAD", "SIDEWALK", "BUILDING", "POLE", "TRAFFIC_LIGHT", "TRAFFIC_SIGN", "VEGETATION", "TERRAIN", "SKY",
           "PERSON", "RIDER", "CAR", "MOTORCYCLE", "BICYCLE"]
