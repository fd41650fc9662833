"""The facekit app: `streamlit run app.py`. This file only names the pages (thin scripts in
pages/) for the sidebar; the first is the home page at the site's root."""
import streamlit as st

PAGES = [
    st.Page("pages/0_Home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/1_Dataset_Explorer.py", title="Dataset Explorer", icon=":material/bar_chart:",
            url_path="Dataset_Explorer"),
    st.Page("pages/2_Predict.py", title="Predict", icon=":material/face:", url_path="Predict"),
    st.Page("pages/3_Batch_Analytics.py", title="Batch Analytics", icon=":material/groups:",
            url_path="Batch_Analytics"),
    st.Page("pages/4_Model_Evaluation.py", title="Model Evaluation", icon=":material/fact_check:",
            url_path="Model_Evaluation"),
    st.Page("pages/5_Video.py", title="Video", icon=":material/movie:", url_path="Video"),
    st.Page("pages/6_Live.py", title="Live", icon=":material/videocam:", url_path="Live"),
]

st.navigation(PAGES).run()
