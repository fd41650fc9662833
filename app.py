"""facekit home page: what the app does, what each page is for, and the data licences."""
import streamlit as st

st.set_page_config(page_title="facekit", page_icon=":material/face:", layout="wide")

st.title("facekit")
st.markdown(
    """
Estimate **age, gender and ethnicity** from face photos, see **why** the model said so,
and measure **how biased** the data and the model are.

| page | what it is for |
|---|---|
| **Dataset Explorer** | distributions of age, gender and ethnicity in a dataset (shipped UTKFace and FairFace labels, or any supported dataset on disk), their crossings, imbalance figures, two datasets side by side, and a filterable face gallery with the filtered labels as CSV |
| **Predict** | one photo (upload, webcam or the sample): every face boxed, gender and ethnicity probabilities, age with its 80% interval, Grad-CAM maps of any head and class, downloads (CSV, JSON, annotated image) |
| **Batch Analytics** | many photos or a ZIP: a table of every face and a breakdown by age group, gender and ethnicity with confidence intervals, as CSV; for statistics about groups, never about individuals |
| **Model Evaluation** | how accurate the shipped model (or any evaluated one) is: confusion matrices, per-class precision/recall/F1, accuracy and age error by gender, ethnicity, age group and their crossings with confidence intervals and the gaps written out, reliability diagrams, the most confident mistakes, two reports side by side, and the model card |
| **Video** | a video file: frames sampled (2 per second by default), each face followed from frame to frame, one row per followed face with averaged probabilities and a median age with its interval, a timeline, an annotated video, CSV and JSON downloads |
| **Live** | the webcam as a stream: every frame boxed and labelled while the model refreshes in the background as often as the CPU allows, with frames per second and refreshes per second shown |

Every prediction is a probability, and every age comes with an interval: the model is
wrong sometimes, and more often for some groups than others. Do not use it to make
decisions about individuals.
"""
)
st.subheader("Data and licences")
st.markdown(
    """
- **UTKFace** (Zhang, Song, Qi, CVPR 2017) is available for **non-commercial research
  purposes only**; the copyright of the images belongs to their original owners. The
  shipped model is trained on it, so it inherits that restriction.
- **FairFace** labels (Kärkkäinen & Joo, WACV 2021): CC BY 4.0.
- Photos you upload are processed in memory and never stored.
"""
)
