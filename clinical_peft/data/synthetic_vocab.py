"""Vocabularies for `synthetic.py`: the clinical knowledge the fake notes draw on.

Everything here is plain data. The generators only ever index these lists (never iterate over a
set), so output depends on the seed alone.
"""

from __future__ import annotations

# Hand-packed tables: the formatter would put every string on its own line.
# fmt: off

# Primary reasons for admission. Each one brings its own complaint, history, exam, labs, imaging,
# course and medications, so the same words recur across the sections of one note: that shared
# vocabulary is what a small LM can learn to predict.
CONDITIONS: list[dict] = [
    {
        "name": "community acquired pneumonia", "short": "pneumonia", "complaint": "Cough, fever",
        "symptoms": [
            "a productive cough with yellow sputum", "fevers to 101.5", "pleuritic chest pain",
            "worsening shortness of breath", "chills and night sweats",
        ],
        "exam": ["crackles at the right base", "egophony over the right lower lobe", "tachypneic"],
        "labs": {"WBC": (13.5, 21.0), "Lactate": (1.4, 2.6)},
        "imaging": (
            "CXR", "There is a new right lower lobe consolidation concerning for pneumonia.",
            "Right lower lobe pneumonia.",
        ),
        "course": [
            "He was started on ceftriaxone and azithromycin for community acquired pneumonia.",
            "Sputum culture grew oropharyngeal flora and blood cultures remained negative.",
            "Oxygen requirement improved and he was weaned to room air.",
            "Antibiotics were narrowed to oral levofloxacin to complete a 5 day course.",
        ],
        "treatment": "ceftriaxone and azithromycin",
        "meds": [
            "Levofloxacin 750 mg PO Q24H Duration: 3 Days", "Guaifenesin 10 mL PO Q6H:PRN cough",
        ],
    },
    {
        "name": "acute on chronic systolic heart failure", "short": "heart failure exacerbation",
        "complaint": "Dyspnea on exertion",
        "symptoms": [
            "three pillow orthopnea", "paroxysmal nocturnal dyspnea", "bilateral leg swelling",
            "a weight gain of 8 pounds", "dietary indiscretion with salty food",
        ],
        "exam": ["JVP elevated to 12 cm", "bibasilar crackles", "2+ pitting edema to the knees"],
        "labs": {"proBNP": (4200, 18000), "Creat": (1.2, 1.8)},
        "imaging": (
            "CXR", "There is pulmonary vascular congestion with small bilateral pleural effusions.",
            "Mild pulmonary edema and small bilateral effusions.",
        ),
        "course": [
            "He was diuresed with IV furosemide with net negative fluid balance each day.",
            "Transthoracic echocardiogram showed an ejection fraction of 25 percent.",
            "Dry weight on discharge was 82 kg and he was transitioned to oral torsemide.",
            "Metoprolol succinate was continued and lisinopril was uptitrated.",
        ],
        "treatment": "IV furosemide diuresis",
        "meds": ["Torsemide 40 mg PO DAILY", "Metoprolol Succinate XL 50 mg PO DAILY"],
    },
    {
        "name": "chronic obstructive pulmonary disease exacerbation", "short": "COPD exacerbation",
        "complaint": "Wheezing, shortness of breath",
        "symptoms": [
            "increased sputum production", "audible wheezing", "increased albuterol use",
            "a recent upper respiratory infection", "dyspnea at rest",
        ],
        "exam": [
            "diffuse expiratory wheezes", "prolonged expiratory phase", "accessory muscle use",
        ],
        "labs": {"pCO2": (48, 62), "WBC": (10.5, 14.0)},
        "imaging": (
            "CXR", "The lungs are hyperinflated without focal consolidation.",
            "Hyperinflation consistent with COPD. No pneumonia.",
        ),
        "course": [
            "He received nebulized albuterol and ipratropium, prednisone 40 mg and azithromycin.",
            "His wheezing improved over 48 hours and he returned to his baseline 2 L home oxygen.",
            "He was counseled on smoking cessation and given a nicotine patch.",
            "Pulmonary rehabilitation referral was placed.",
        ],
        "treatment": "nebulizers, prednisone and azithromycin",
        "meds": ["PredniSONE 40 mg PO DAILY Duration: 2 Days", "Tiotropium Bromide 1 CAP IH DAILY"],
    },
    {
        "name": "sepsis from pyelonephritis", "short": "urosepsis",
        "complaint": "Fever, flank pain",
        "symptoms": [
            "dysuria and urinary frequency", "right flank pain", "fevers and rigors",
            "nausea with poor oral intake", "malodorous urine",
        ],
        "exam": [
            "right costovertebral angle tenderness", "suprapubic tenderness", "warm and flushed",
        ],
        "labs": {"WBC": (15.0, 24.0), "Lactate": (2.2, 4.5), "Creat": (1.3, 2.2)},
        "imaging": (
            "CTAP", "There is right perinephric fat stranding and urothelial enhancement.",
            "Findings consistent with right pyelonephritis. No abscess or obstructing stone.",
        ),
        "course": [
            "He met sepsis criteria and received 30 mL/kg of IV fluids and cefepime.",
            "Urine culture grew pan sensitive E. coli and blood cultures grew E. coli in 1 of 4 bottles.",
            "Antibiotics were narrowed to ceftriaxone and then oral ciprofloxacin.",
            "Lactate cleared and creatinine returned to baseline with hydration.",
        ],
        "treatment": "IV fluids and cefepime",
        "meds": ["Ciprofloxacin HCl 500 mg PO Q12H Duration: 10 Days"],
    },
    {
        "name": "upper gastrointestinal bleed from duodenal ulcer", "short": "GI bleed",
        "complaint": "Melena",
        "symptoms": [
            "black tarry stools for two days", "coffee ground emesis",
            "lightheadedness on standing", "daily ibuprofen use for back pain",
            "epigastric discomfort",
        ],
        "exam": ["pale conjunctivae", "melena on rectal exam", "orthostatic"],
        "labs": {"Hgb": (6.2, 8.4), "Hct": (19.0, 26.0), "UreaN": (38, 70)}, "imaging": None,
        "course": [
            "He was transfused 2 units of packed red blood cells and started on a pantoprazole drip.",
            "EGD showed a clean based duodenal ulcer without active bleeding.",
            "Hemoglobin remained stable for 48 hours after transfusion.",
            "Ibuprofen was stopped and H. pylori serology was sent.",
        ],
        "treatment": "transfusion and a pantoprazole drip",
        "meds": ["Pantoprazole 40 mg PO Q12H", "Sucralfate 1 gm PO QID"],
    },
    {
        "name": "acute kidney injury from volume depletion", "short": "acute kidney injury",
        "complaint": "Weakness, poor oral intake",
        "symptoms": [
            "poor oral intake for a week", "decreased urine output", "diarrhea", "dizziness",
            "recent increase in diuretic dose",
        ],
        "exam": ["dry mucous membranes", "flat neck veins", "poor skin turgor"],
        "labs": {"Creat": (2.4, 4.1), "UreaN": (45, 80), "K": (5.2, 6.1)},
        "imaging": (
            "RENUS", "There is no hydronephrosis. The kidneys are normal in size.",
            "No hydronephrosis.",
        ),
        "course": [
            "Lisinopril and furosemide were held and he received IV fluids.",
            "Urine sodium was low consistent with a prerenal etiology.",
            "Creatinine improved from 3.2 to 1.4 by discharge.",
            "Hyperkalemia resolved with fluids and a low potassium diet.",
        ],
        "treatment": "IV fluids and holding nephrotoxins",
        "meds": ["Sodium Bicarbonate 650 mg PO BID"],
    },
    {
        "name": "non ST elevation myocardial infarction", "short": "NSTEMI",
        "complaint": "Chest pain",
        "symptoms": [
            "substernal chest pressure radiating to the left arm", "diaphoresis",
            "chest pain with exertion for one week", "nausea", "dyspnea",
        ],
        "exam": ["diaphoretic", "S4 gallop", "no murmurs"],
        "labs": {"cTropnT": (0.25, 2.4), "CK(CPK)": (280, 900)},
        "imaging": ("CXR", "There is no acute cardiopulmonary abnormality.", "No acute process."),
        "course": [
            "He was started on aspirin, a heparin drip, atorvastatin 80 mg and metoprolol.",
            "Cardiac catheterization showed a 90 percent mid LAD stenosis treated with a drug eluting stent.",
            "He was loaded with clopidogrel and will continue dual antiplatelet therapy.",
            "Echocardiogram showed mild anterior hypokinesis with ejection fraction 45 percent.",
        ],
        "treatment": "aspirin, heparin and cardiac catheterization",
        "meds": [
            "Clopidogrel 75 mg PO DAILY", "Atorvastatin 80 mg PO QPM", "Aspirin 81 mg PO DAILY",
        ],
    },
    {
        "name": "atrial fibrillation with rapid ventricular response",
        "short": "atrial fibrillation", "complaint": "Palpitations",
        "symptoms": [
            "palpitations since the morning", "fatigue", "mild dyspnea on exertion",
            "a fluttering sensation in the chest", "one episode of near syncope",
        ],
        "exam": ["irregularly irregular rhythm", "tachycardic to the 140s", "no murmurs"],
        "labs": {"TSH": (0.4, 3.2), "Mg": (1.5, 1.7)},
        "imaging": (
            "CXR", "Heart size is mildly enlarged. No pulmonary edema.", "Mild cardiomegaly.",
        ),
        "course": [
            "He was rate controlled with IV diltiazem and then oral metoprolol.",
            "CHA2DS2-VASc score was 4 and he was started on apixaban.",
            "Echocardiogram showed a dilated left atrium and preserved ejection fraction.",
            "He remained in rate controlled atrial fibrillation at discharge.",
        ],
        "treatment": "diltiazem and apixaban",
        "meds": ["Apixaban 5 mg PO BID", "Metoprolol Tartrate 50 mg PO Q6H"],
    },
    {
        "name": "acute ischemic stroke", "short": "ischemic stroke",
        "complaint": "Left sided weakness",
        "symptoms": [
            "sudden left arm and leg weakness", "slurred speech", "a left facial droop",
            "last known well at 7 am", "difficulty walking",
        ],
        "exam": [
            "left pronator drift", "left facial droop", "4/5 strength in the left arm",
            "dysarthria",
        ],
        "labs": {"%HbA1c": (6.8, 9.1), "LDLcalc": (130, 190)},
        "imaging": (
            "CTHEAD",
            "There is a hypodensity in the right MCA territory consistent with acute infarct.",
            "Acute right MCA territory infarct. No hemorrhage.",
        ),
        "course": [
            "He was outside the window for thrombolysis and was started on aspirin and atorvastatin.",
            "MRI confirmed an acute right MCA infarct and neurology followed closely.",
            "Telemetry showed no atrial fibrillation and carotid ultrasound showed no stenosis.",
            "Physical therapy recommended acute rehabilitation.",
        ],
        "treatment": "aspirin and atorvastatin",
        "meds": ["Aspirin 325 mg PO DAILY", "Atorvastatin 80 mg PO QPM"],
    },
    {
        "name": "left lower extremity cellulitis", "short": "cellulitis",
        "complaint": "Leg redness",
        "symptoms": [
            "redness and swelling of the left shin", "warmth of the left leg", "low grade fevers",
            "a small cut on the left ankle", "pain with walking",
        ],
        "exam": [
            "erythema of the left lower leg with a demarcated border", "warm and tender left shin",
            "tinea pedis between the toes",
        ],
        "labs": {"WBC": (11.5, 16.0), "CRP": (40, 160)},
        "imaging": (
            "LENIS",
            "There is normal compressibility and flow of the left common femoral and popliteal veins.",
            "No evidence of deep venous thrombosis in the left leg.",
        ),
        "course": [
            "He was treated with IV vancomycin with rapid improvement of the erythema.",
            "The border of the erythema was marked and receded daily.",
            "He was transitioned to oral cephalexin and doxycycline.",
            "Tinea pedis was treated with topical clotrimazole.",
        ],
        "treatment": "IV vancomycin",
        "meds": ["Cephalexin 500 mg PO Q6H Duration: 7 Days", "Clotrimazole Cream 1 Appl TP BID"],
    },
    {
        "name": "diabetic ketoacidosis", "short": "DKA", "complaint": "Nausea, vomiting",
        "symptoms": [
            "polyuria and polydipsia", "nausea and vomiting", "missed insulin doses",
            "abdominal pain", "fatigue",
        ],
        "exam": ["Kussmaul respirations", "dry mucous membranes", "fruity odor on breath"],
        "labs": {"Glucose": (420, 690), "HCO3": (8, 14), "AnGap": (24, 33)}, "imaging": None,
        "course": [
            "He was started on an insulin drip and aggressive IV fluids per the DKA protocol.",
            "The anion gap closed after 14 hours and he was bridged to subcutaneous insulin.",
            "The trigger was felt to be insulin nonadherence.",
            "The diabetes educator met with him about insulin dosing.",
        ],
        "treatment": "an insulin drip and IV fluids",
        "meds": ["Glargine 24 Units Bedtime", "Humalog sliding scale with meals"],
    },
    {
        "name": "acute pancreatitis", "short": "pancreatitis", "complaint": "Abdominal pain",
        "symptoms": [
            "epigastric pain radiating to the back", "nausea and vomiting", "heavy alcohol use",
            "pain worse after eating", "poor appetite",
        ],
        "exam": ["epigastric tenderness", "voluntary guarding", "hypoactive bowel sounds"],
        "labs": {"Lipase": (900, 4800), "ALT": (60, 220)},
        "imaging": (
            "CTAP", "There is peripancreatic fat stranding and edema of the pancreatic head.",
            "Acute interstitial pancreatitis without necrosis.",
        ),
        "course": [
            "He was treated with aggressive IV fluids, pain control and bowel rest.",
            "Right upper quadrant ultrasound showed no gallstones.",
            "Diet was advanced to low fat solids on hospital day 3.",
            "He was counseled on alcohol cessation and seen by social work.",
        ],
        "treatment": "IV fluids and bowel rest",
        "meds": ["Thiamine 100 mg PO DAILY", "FoLIC Acid 1 mg PO DAILY"],
    },
    {
        "name": "decompensated alcoholic cirrhosis", "short": "cirrhosis",
        "complaint": "Abdominal distension",
        "symptoms": [
            "increasing abdominal girth", "confusion noted by family", "yellowing of the eyes",
            "leg swelling", "prior large volume paracentesis",
        ],
        "exam": ["tense ascites", "scleral icterus", "asterixis", "spider angiomata"],
        "labs": {"TotBili": (3.1, 8.5), "INR(PT)": (1.6, 2.5), "Albumin": (2.1, 2.8)},
        "imaging": (
            "RUQUS", "The liver is coarsened and nodular with moderate ascites.",
            "Cirrhotic liver with moderate ascites. Patent portal vein.",
        ),
        "course": [
            "Diagnostic paracentesis showed no spontaneous bacterial peritonitis.",
            "Therapeutic paracentesis removed 5 L with albumin given.",
            "Hepatic encephalopathy improved with lactulose and rifaximin.",
            "Diuretics were restarted and the hepatology clinic will follow.",
        ],
        "treatment": "paracentesis, lactulose and rifaximin",
        "meds": [
            "Lactulose 30 mL PO TID", "Rifaximin 550 mg PO BID", "Spironolactone 100 mg PO DAILY",
        ],
    },
    {
        "name": "acute pulmonary embolism", "short": "pulmonary embolism",
        "complaint": "Shortness of breath",
        "symptoms": [
            "sudden onset dyspnea", "pleuritic chest pain", "a recent long flight",
            "right calf swelling", "tachycardia noted at urgent care",
        ],
        "exam": ["tachycardic", "right calf tenderness", "clear lungs"],
        "labs": {"D-Dimer": (1800, 6400), "cTropnT": (0.02, 0.09)},
        "imaging": (
            "CTA",
            "There are filling defects in the right lower lobe segmental pulmonary arteries.",
            "Acute right lower lobe pulmonary embolism without right heart strain.",
        ),
        "course": [
            "He was started on a heparin drip and transitioned to apixaban.",
            "Lower extremity ultrasound showed a right popliteal deep venous thrombosis.",
            "Echocardiogram showed a normal right ventricle.",
            "He will complete at least 3 months of anticoagulation.",
        ],
        "treatment": "a heparin drip then apixaban", "meds": ["Apixaban 5 mg PO BID"],
    },
    {
        "name": "small bowel obstruction", "short": "small bowel obstruction",
        "complaint": "Abdominal pain, vomiting",
        "symptoms": [
            "crampy abdominal pain", "bilious vomiting", "no bowel movement or flatus for two days",
            "prior appendectomy and hysterectomy", "abdominal distension",
        ],
        "exam": [
            "distended abdomen", "high pitched bowel sounds", "diffuse tenderness without rebound",
        ],
        "labs": {"WBC": (11.0, 15.5), "Lactate": (1.2, 2.2)},
        "imaging": (
            "CTAP",
            "There are dilated loops of small bowel with a transition point in the right lower quadrant.",
            "Small bowel obstruction likely from adhesions. No free air.",
        ),
        "course": [
            "A nasogastric tube was placed for decompression and he was kept NPO.",
            "General surgery followed and a small bowel follow through showed contrast in the colon.",
            "The obstruction resolved with conservative management.",
            "Diet was advanced and he had bowel movements before discharge.",
        ],
        "treatment": "nasogastric decompression and bowel rest",
        "meds": ["Docusate Sodium 100 mg PO BID"],
    },
]

# Chronic problems: (name, home medication, one hospital course line).
COMORBIDITIES: list[tuple[str, str, str]] = [
    ("hypertension", "Lisinopril 20 mg PO DAILY", "Home lisinopril was continued."),
    ("hyperlipidemia", "Atorvastatin 40 mg PO QPM", "Home atorvastatin was continued."),
    (
        "type 2 diabetes mellitus", "MetFORMIN (Glucophage) 1000 mg PO BID",
        "Metformin was held and he was covered with a humalog sliding scale.",
    ),
    ("coronary artery disease", "Aspirin 81 mg PO DAILY", "Aspirin and statin were continued."),
    (
        "chronic kidney disease stage 3", "Calcitriol 0.25 mcg PO DAILY",
        "Creatinine remained at his baseline of 1.6 and medications were renally dosed.",
    ),
    ("hypothyroidism", "Levothyroxine Sodium 75 mcg PO DAILY", "Home levothyroxine was continued."),
    ("GERD", "Omeprazole 20 mg PO DAILY", "Home omeprazole was continued."),
    ("depression", "Sertraline 100 mg PO DAILY", "Home sertraline was continued."),
    ("benign prostatic hyperplasia", "Tamsulosin 0.4 mg PO QHS", "Home tamsulosin was continued."),
    (
        "osteoarthritis", "Acetaminophen 650 mg PO Q6H:PRN pain",
        "Pain was controlled with acetaminophen.",
    ),
    ("obstructive sleep apnea", "CPAP at night", "He used his home CPAP overnight."),
    ("gout", "Allopurinol 100 mg PO DAILY", "Allopurinol was continued without flares."),
    (
        "anxiety", "Lorazepam 0.5 mg PO Q8H:PRN anxiety",
        "Home lorazepam was continued at a lower dose.",
    ),
    ("osteoporosis", "Alendronate Sodium 70 mg PO 1X/WEEK", "Alendronate was continued."),
]

# Lab panels in MIMIC-IV style: name, normal low, normal high, decimals.
LAB_PANELS: list[list[tuple[str, float, float, int]]] = [
    [
        ("WBC", 4.0, 11.0, 1), ("RBC", 4.2, 5.4, 2), ("Hgb", 12.0, 16.0, 1), ("Hct", 36.0, 48.0, 1),
        ("MCV", 82, 98, 0), ("MCH", 27.0, 32.0, 1), ("MCHC", 31.0, 35.0, 1), ("RDW", 11.5, 14.5, 1),
        ("Plt Ct", 150, 400, 0),
    ],
    [
        ("Glucose", 70, 100, 0), ("UreaN", 6, 20, 0), ("Creat", 0.5, 1.1, 1), ("Na", 133, 145, 0),
        ("K", 3.3, 5.1, 1), ("Cl", 96, 108, 0), ("HCO3", 22, 32, 0), ("AnGap", 8, 16, 0),
    ],
    [
        ("ALT", 0, 40, 0), ("AST", 0, 40, 0), ("AlkPhos", 40, 130, 0), ("TotBili", 0.1, 1.2, 1),
        ("Albumin", 3.5, 5.2, 1), ("Lipase", 0, 60, 0),
    ],
    [("Calcium", 8.4, 10.3, 1), ("Phos", 2.7, 4.5, 1), ("Mg", 1.6, 2.6, 1)],
    [("PT", 9.4, 12.5, 1), ("PTT", 25.0, 36.5, 1), ("INR(PT)", 0.9, 1.1, 1)],
]
EXTRA_LABS: dict[str, tuple[float, float, int]] = {
    "Lactate": (0.5, 2.0, 1), "proBNP": (20, 300, 0), "cTropnT": (0.0, 0.01, 2),
    "CK(CPK)": (40, 200, 0), "TSH": (0.27, 4.2, 2), "%HbA1c": (4.0, 6.0, 1),
    "LDLcalc": (40, 130, 0), "CRP": (0.0, 5.0, 1), "D-Dimer": (100, 500, 0), "pCO2": (35, 45, 0),
}

# Radiology exams: title, technique, normal findings, normal impression.
EXAMS: dict[str, tuple[str, str, list[str], str]] = {
    "CXR": (
        "CHEST (PA AND LAT)", "Chest PA and lateral",
        [
            "The lungs are clear without focal consolidation.",
            "No pleural effusion or pneumothorax is seen.",
            "The cardiac and mediastinal silhouettes are unremarkable.", "Heart size is normal.",
            "There is no pulmonary vascular congestion.", "Osseous structures are intact.",
            "Multilevel degenerative changes are seen in the thoracic spine.",
        ],
        "No acute cardiopulmonary process.",
    ),
    "CXRP": (
        "CHEST (PORTABLE AP)", "Portable AP chest radiograph",
        [
            "Lung volumes are low.", "There is no focal consolidation.",
            "No large pleural effusion.", "No pneumothorax.",
            "The cardiomediastinal silhouette is stable.",
            "A right internal jugular central line terminates in the mid SVC.",
        ],
        "No acute cardiopulmonary process.",
    ),
    "CTHEAD": (
        "CT HEAD W/O CONTRAST",
        "Contiguous axial images of the brain were obtained without contrast.",
        [
            "There is no evidence of hemorrhage, edema, mass effect, or large territorial infarction.",
            "The ventricles and sulci are normal in size and configuration for age.",
            "Periventricular white matter hypodensities likely reflect chronic small vessel ischemic disease.",
            "The basal cisterns appear patent and there is preservation of gray white matter differentiation.",
            "No osseous abnormalities are seen.",
            "The visualized paranasal sinuses, mastoid air cells, and middle ear cavities are clear.",
            "The orbits are unremarkable.",
        ],
        "No acute intracranial process.",
    ),
    "CTAP": (
        "CT ABD AND PELVIS WITH CONTRAST",
        "Multidetector CT of the abdomen and pelvis after IV contrast.",
        [
            "LOWER CHEST: Visualized lung fields are within normal limits.",
            "HEPATOBILIARY: The liver demonstrates homogeneous attenuation throughout. There is no evidence of focal lesions.",
            "PANCREAS: The pancreas has normal attenuation throughout, without evidence of focal lesions.",
            "SPLEEN: The spleen shows normal size and attenuation throughout.",
            "ADRENALS: The right and left adrenal glands are normal in size and shape.",
            "URINARY: The kidneys are of normal and symmetric size with normal nephrogram. There is no hydronephrosis.",
            "GASTROINTESTINAL: The stomach is unremarkable. Small bowel loops demonstrate normal caliber and wall thickness.",
            "PELVIS: The urinary bladder and distal ureters are unremarkable. There is no free fluid in the pelvis.",
            "LYMPH NODES: There is no retroperitoneal or mesenteric lymphadenopathy.",
            "VASCULAR: There is moderate calcium burden in the abdominal aorta and great abdominal arteries.",
            "BONES: There is no evidence of worrisome osseous lesions or acute fracture.",
            "SOFT TISSUES: The abdominal and pelvic wall is within normal limits.",
        ],
        "No acute process in the abdomen or pelvis.",
    ),
    "CTA": (
        "CTA CHEST", "Wide detector CT angiogram of the chest after IV contrast.",
        [
            "The pulmonary arteries are well opacified to the subsegmental level.",
            "The thoracic aorta is normal in caliber without evidence of dissection.",
            "The heart is normal in size. There is no pericardial effusion.",
            "There is no mediastinal, hilar or axillary lymphadenopathy.",
            "There is mild bibasilar atelectasis. No pleural effusion.",
            "Limited images of the upper abdomen are unremarkable.",
        ],
        "No evidence of pulmonary embolism or aortic abnormality.",
    ),
    "RENUS": (
        "RENAL U.S.",
        "Grey scale and color Doppler ultrasound images of the kidneys were obtained.",
        [
            "The right kidney measures 10.8 cm.", "The left kidney measures 11.2 cm.",
            "There is no hydronephrosis, stones, or masses bilaterally.",
            "Normal cortical echogenicity and corticomedullary differentiation are seen bilaterally.",
            "The bladder is moderately well distended and normal in appearance.",
        ],
        "Normal renal ultrasound.",
    ),
    "RUQUS": (
        "LIVER OR GALLBLADDER US (SINGLE ORGAN)",
        "Grey scale and color Doppler ultrasound images of the abdomen.",
        [
            "LIVER: The hepatic parenchyma appears within normal limits. The contour of the liver is smooth.",
            "The main portal vein is patent with hepatopetal flow.",
            "BILE DUCTS: There is no intrahepatic biliary dilation. The CHD measures 4 mm.",
            "GALLBLADDER: There is no evidence of stones or gallbladder wall thickening.",
            "PANCREAS: Imaged portion of the pancreas appears within normal limits.",
            "SPLEEN: Normal echogenicity, measuring 10.1 cm.",
        ],
        "Normal abdominal ultrasound.",
    ),
    "LENIS": (
        "UNILAT LOWER EXT VEINS",
        "Grey scale, color, and spectral Doppler evaluation of the veins.",
        [
            "There is normal compressibility, flow, and augmentation of the common femoral, femoral, and popliteal veins.",
            "Normal color flow and compressibility are demonstrated in the posterior tibial and peroneal veins.",
            "There is normal respiratory variation in the common femoral veins bilaterally.",
            "No evidence of medial popliteal fossa (Baker's) cyst.",
        ],
        "No evidence of deep venous thrombosis.",
    ),
    "MRHEAD": (
        "MR HEAD W/O CONTRAST",
        "Sagittal and axial T1, axial FLAIR, T2, diffusion and gradient echo images.",
        [
            "There is no evidence of hemorrhage, edema, masses, mass effect, midline shift or infarction.",
            "There are scattered foci of T2 and FLAIR hyperintensity in the periventricular white matter.",
            "The ventricles and sulci are normal in caliber and configuration.",
            "The major intracranial flow voids are preserved.",
            "The visualized paranasal sinuses and mastoid air cells are clear.",
        ],
        "No acute intracranial abnormality.",
    ),
}
EXAM_KEYS: list[str] = list(EXAMS)

# Filler that gives a note its texture without carrying a label.
ROS_NEGATIVES = [
    "headache", "vision changes", "rhinorrhea", "congestion", "sore throat", "cough",
    "shortness of breath", "chest pain", "abdominal pain", "nausea", "vomiting", "diarrhea",
    "constipation", "BRBPR", "melena", "hematochezia", "dysuria", "hematuria", "rash", "joint pain",
    "weight loss", "fevers", "chills",
]
SOCIAL = [
    "Lives with his wife in a single family home.", "Lives alone in an apartment.",
    "Retired machinist.", "Former smoker, quit 20 years ago.",
    "Drinks one glass of wine with dinner.", "Denies illicit drug use.",
    "Works as a school bus driver.", "Independent in all ADLs.", "Walks with a cane.",
    "Has two adult children who live nearby.",
]
FAMILY = [
    "Mother with hypertension and diabetes.", "Father had a myocardial infarction at age 70.",
    "Sister with breast cancer.", "Brother with COPD.", "No family history of colon cancer.",
    "Noncontributory.",
]
ALLERGIES = [
    "No Known Allergies / Adverse Drug Reactions", "Penicillins", "Sulfa (Sulfonamide Antibiotics)",
    "Codeine", "lisinopril / Iodine", "Patient recorded as having No Known Allergies to Drugs",
]
SERVICES = {
    "default": "MEDICINE", "NSTEMI": "CARDIOLOGY", "ischemic stroke": "NEUROLOGY",
    "small bowel obstruction": "SURGERY",
}
DISPOSITIONS = ["Home", "Home With Service", "Extended Care"]

# --- outcome tasks: curated ICD-9 groups first (most frequent first), each with a few terms the
# admission note mentions when the code is present. "severe" codes become likelier with severity.
DIAG_CODES: list[tuple[str, list[str], bool]] = [
    ("401", ["hypertension", "on lisinopril", "elevated blood pressure"], False),
    ("428", ["congestive heart failure", "reduced ejection fraction", "on furosemide"], False),
    ("427", ["atrial fibrillation", "irregularly irregular rhythm", "on warfarin"], False),
    ("276", ["hyponatremia", "hypokalemia", "volume depleted"], False),
    ("414", ["coronary artery disease", "prior stent", "CABG"], False),
    ("272", ["hyperlipidemia", "on atorvastatin", "high cholesterol"], False),
    ("250", ["diabetes mellitus", "on insulin", "metformin"], False),
    ("584", ["acute kidney injury", "creatinine elevated", "oliguria"], True),
    ("518", ["respiratory failure", "hypoxemia", "increased work of breathing"], True),
    ("285", ["anemia", "hematocrit low", "pale conjunctivae"], False),
    ("599", ["urinary tract infection", "dysuria", "positive urinalysis"], False),
    ("530", ["GERD", "reflux", "on omeprazole"], False),
    ("038", ["bacteremia", "blood cultures positive", "rigors"], True),
    ("V45", ["pacemaker", "implanted device", "status post"], False),
    ("995", ["sepsis", "fever and tachycardia", "leukocytosis"], True),
    ("403", ["chronic kidney disease", "hypertensive nephropathy", "stage 4 CKD"], False),
    ("496", ["COPD", "emphysema", "home oxygen"], False),
    ("244", ["hypothyroidism", "levothyroxine", "elevated TSH"], False),
    ("V58", ["long term anticoagulation", "chronic prednisone", "coumadin clinic"], False),
    ("305", ["tobacco use", "smokes one pack per day", "cannabis"], False),
    ("486", ["pneumonia", "infiltrate", "productive cough"], False),
    ("311", ["depression", "sertraline", "depressed mood"], False),
    ("785", ["septic shock", "requiring pressors", "norepinephrine"], True),
    ("287", ["thrombocytopenia", "low platelets", "petechiae"], True),
    ("493", ["asthma", "albuterol inhaler", "wheezing"], False),
    ("585", ["end stage renal disease", "hemodialysis", "AV fistula"], False),
    ("V15", ["fall risk", "history of falls", "noncompliance"], False),
    ("303", ["alcohol abuse", "drinks a pint of vodka daily", "alcohol withdrawal"], False),
    ("507", ["aspiration", "witnessed aspiration event", "gurgling respirations"], True),
    ("434", ["stroke", "hemiparesis", "facial droop"], True),
    ("410", ["myocardial infarction", "troponin elevated", "ST elevation"], True),
    ("348", ["encephalopathy", "altered mental status", "somnolent"], True),
    ("571", ["cirrhosis", "ascites", "varices"], False),
    ("578", ["gastrointestinal bleeding", "melena", "hematochezia"], False),
    ("424", ["aortic stenosis", "mitral regurgitation", "systolic murmur"], False),
    ("707", ["pressure ulcer", "sacral decubitus", "wound care"], False),
    ("458", ["hypotension", "orthostatic", "lightheaded"], False),
    ("682", ["cellulitis", "erythema", "abscess"], False),
    ("300", ["anxiety", "panic attacks", "lorazepam"], False),
    ("431", ["intracerebral hemorrhage", "intraparenchymal bleed", "midline shift"], True),
    ("560", ["small bowel obstruction", "distended abdomen", "obstipation"], False),
    ("577", ["pancreatitis", "lipase elevated", "epigastric pain"], False),
    ("415", ["pulmonary embolism", "filling defect", "pleuritic pain"], False),
    ("574", ["cholecystitis", "gallstones", "Murphy sign"], False),
    ("345", ["seizure", "epilepsy", "levetiracetam"], False),
    ("733", ["osteoporosis", "compression fracture", "alendronate"], False),
    ("V43", ["hip replacement", "knee arthroplasty", "prosthetic joint"], False),
    ("820", ["hip fracture", "femoral neck fracture", "shortened and externally rotated"], False),
    ("162", ["lung cancer", "lung mass", "adenocarcinoma"], False),
    ("197", ["metastatic disease", "liver metastases", "bony metastases"], True),
    ("426", ["heart block", "bundle branch block", "bradycardia"], False),
    ("441", ["aortic aneurysm", "AAA", "aortic dissection"], False),
    ("288", ["neutropenia", "leukopenia", "low white count"], False),
    ("332", ["Parkinson disease", "resting tremor", "carbidopa levodopa"], False),
    ("290", ["dementia", "memory loss", "nursing home resident"], False),
    ("E849", ["accident at home", "tripped on a rug", "mechanical fall"], False),
    ("E878", ["surgical complication", "reaction to procedure", "postoperative course"], False),
]
# Procedure groups as the task scripts write them: leading zeros lost ("033" -> "33").
PROC_CODES: list[tuple[str, list[str], bool]] = [
    ("967", ["mechanical ventilation", "ventilator", "ARDSnet settings"], True),
    ("389", ["central line", "venous catheter", "PICC"], True),
    ("966", ["tube feeds", "enteral nutrition", "dobhoff"], True),
    ("960", ["endotracheal tube", "airway protection", "emergent intubation"], True),
    ("990", ["transfusion", "packed red cells", "pRBC"], False),
    ("396", ["cardiopulmonary bypass", "on pump", "perfusion"], False),
    ("361", ["bypass grafting planned", "surgical revascularization", "graft"], False),
    ("372", ["cardiac catheterization", "cath lab", "left heart cath"], False),
    ("885", ["coronary angiography", "angiogram", "contrast load"], False),
    ("395", ["dialysis session", "CRRT", "ultrafiltration"], True),
    ("311", ["tracheostomy", "trach", "prolonged airway"], True),
    ("38", ["epidural injection", "spinal injection", "intrathecal"], False),
    ("431", ["PEG tube", "gastrostomy", "feeding tube placement"], False),
    ("451", ["EGD", "upper endoscopy", "duodenal biopsy"], False),
    ("549", ["paracentesis", "peritoneal tap", "ascitic fluid"], False),
    ("39", ["spinal cord decompression", "laminectomy", "cord compression"], False),
    ("332", ["bronchoscopy", "BAL", "airway inspection"], False),
    ("33", ["lumbar puncture", "CSF analysis", "opening pressure"], False),
    ("815", ["hip arthroplasty", "total knee", "joint replacement surgery"], False),
    ("790", ["open reduction", "fracture fixation", "ORIF"], False),
    ("545", ["lysis of adhesions", "adhesiolysis", "exploratory laparotomy"], False),
    ("457", ["bowel resection", "colectomy", "hemicolectomy"], False),
    ("511", ["ERCP", "biliary stent", "sphincterotomy"], False),
    ("512", ["cholecystectomy", "laparoscopic gallbladder removal", "lap chole"], False),
    ("13", ["craniotomy", "evacuation of hematoma", "burr hole"], True),
    ("349", ["thoracentesis", "pleural fluid", "pleural tap"], False),
    ("340", ["chest tube", "thoracostomy", "pleural drain"], False),
    ("378", ["pacemaker insertion", "pacer", "permanent pacemaker"], False),
    ("376", ["balloon pump", "IABP", "intra-aortic"], True),
    ("996", ["cardioversion", "DC cardioversion", "synchronized shock"], False),
    ("887", ["echocardiogram", "TTE", "diagnostic ultrasound"], False),
]
# Words for the long tail of the code space (up to the real 1266 / 711 codes).
TAIL_ADJ = [
    "chronic", "nodular", "cystic", "benign", "atrophic", "calcified", "congenital", "focal",
    "recurrent", "hypertrophic", "inflammatory", "fibrotic", "ectatic", "stenotic", "polypoid",
    "hemorrhagic", "degenerative", "atypical", "granulomatous", "sclerotic",
]
TAIL_LESION = [
    "lesion", "cyst", "mass", "nodule", "stricture", "ulceration", "thickening", "deformity",
    "effusion", "dilation", "fistula", "abscess", "polyp", "hyperplasia", "neuropathy",
]
TAIL_SITE = [
    "left kidney", "right kidney", "sigmoid colon", "cecum", "thyroid", "parotid gland",
    "left ureter", "bladder neck", "lumbar spine", "cervical spine", "left shoulder", "right knee",
    "pituitary", "adrenal gland", "esophagus", "duodenum", "spleen", "retina", "middle ear",
    "left breast", "prostate", "ovary", "uterus", "tongue", "larynx", "trachea", "pleura",
    "pericardium", "mitral valve", "tricuspid valve", "femur", "tibia", "scalp", "sacrum",
    "left hand", "right foot", "optic nerve", "cerebellum", "temporal lobe", "skin of the back",
]
TAIL_PROC = [
    "biopsy", "excision", "repair", "drainage", "resection", "fixation", "dilation", "ablation",
    "incision", "revision", "reconstruction", "aspiration", "injection", "stent placement",
    "debridement", "closure", "irrigation", "exploration", "transplant", "amputation",
]

# Severity on the page (mortality, pmv and LOS are all driven by a latent severity s ~ N(0, 1)):
# (phrase, threshold): shown with probability sigmoid(2 * (s - threshold)).
SEVERE_PHRASES: list[tuple[str, float]] = [
    ("hypotensive", 0.9), ("septic", 1.1), ("intubated in the field", 1.5),
    ("started on pressors", 1.4), ("altered mental status", 0.6), ("tachypneic", 0.4),
    ("unresponsive", 1.7), ("lactate 5.2", 1.2), ("admitted to the ICU", 0.8),
    ("code status DNR/DNI", 1.3), ("mottled extremities", 1.6), ("GCS 7", 1.8), ("anuric", 1.5),
    ("hypoxic on nonrebreather", 1.0),
]
MILD_PHRASES: list[tuple[str, float]] = [
    ("well appearing", 0.3), ("ambulatory", 0.2), ("alert and oriented x3", 0.0),
    ("in no acute distress", 0.2), ("elective admission", 1.0), ("tolerating diet", 0.5),
    ("full code", -0.2),
]
# Pmv: prolonged ventilation cues among ventilated patients.
PMV_PHRASES = [
    "ARDS", "bilateral infiltrates", "copious secretions", "failed spontaneous breathing trial",
    "high PEEP requirement", "neuromuscular weakness",
]
NEUTRAL_HPI = [
    "Of note, he was recently seen by his PCP.", "Family at bedside provides history.",
    "Review of systems otherwise negative.", "Records from an outside hospital were reviewed.",
    "He has had a stable weight.", "He lives with his daughter.", "Last colonoscopy was normal.",
    "He reports adherence to medications.", "Vaccinations are up to date.",
    "The patient was seen in clinic two weeks ago.", "No recent travel.", "No sick contacts.",
]
# Admission-note narrative that carries no label: {n} is a number of days, {cc} the complaint.
HPI_ONSET = [
    "He was in his usual state of health until {n} days prior to admission when he developed {cc}.",
    "He first noticed {cc} {n} days ago and it has progressively worsened.",
    "His family brought him in after {n} days of {cc}.",
    "He describes {n} days of {cc} that started gradually at home.",
]
HPI_STORY = [
    "He presented to an outside hospital where a CT scan was performed and he was transferred for further care.",
    "At home he tried over the counter medications without relief.",
    "He called his PCP who recommended evaluation in the emergency department.",
    "EMS was called and he was brought to the emergency department.",
    "In the ED he received IV fluids and a dose of acetaminophen.",
    "He has had decreased appetite and has been eating less than usual.",
    "He denies any recent medication changes.", "He has not had similar episodes in the past.",
    "He uses a walker at baseline and has had no recent falls.",
    "His daughter notes that he has been more tired over the past week.",
    "He was given a dose of ondansetron for nausea with some relief.",
    "A urinalysis and chest radiograph were obtained in the ED.",
]
# Hospital course lines that any admission may carry.
GENERIC_COURSE = [
    "He was seen by physical therapy who recommended discharge with home services.",
    "Nutrition was consulted and recommended a cardiac healthy diet.",
    "He was maintained on subcutaneous heparin for DVT prophylaxis.",
    "Electrolytes were repleted as needed.", "He had no events on telemetry.",
    "Pain was well controlled with acetaminophen and low dose oxycodone.",
    "Case management helped arrange services at home.",
    "His home medications were reconciled with his pharmacy.",
    "He remained hemodynamically stable throughout the admission.",
    "He was encouraged to ambulate with assistance and used incentive spirometry.",
    "Social work met with him and his family to discuss support at home.",
    "Bowel regimen with senna and docusate was given while on opioids.",
    "Blood glucose was monitored with fingersticks before meals and at bedtime.",
    "He was evaluated by occupational therapy and was safe for discharge.",
]
EKG_LINES = [
    "EKG: Sinus rhythm at 88 bpm, normal axis, normal intervals, no acute ST-T changes.",
    "EKG: Sinus tachycardia at 104 bpm, left axis deviation, nonspecific T wave flattening.",
    "EKG: Atrial fibrillation with ventricular rate 96, low voltage, no ST elevations.",
    "TTE: The left atrium is mildly dilated. Left ventricular wall thickness and cavity size are normal. There is no pericardial effusion. LVEF 55 percent.",
]
# Incidental radiology findings, so reports vary the way real ones do.
INCIDENTALS = [
    ("A 4 mm nodule in the right upper lobe is unchanged.", "Stable 4 mm right upper lobe nodule."),
    (
        "There is a simple cyst in the upper pole of the left kidney measuring 1.8 cm.",
        "Simple left renal cyst, no follow up needed.",
    ),
    (
        "Mild degenerative changes are seen in the imaged spine.",
        "Degenerative changes of the spine.",
    ),
    (
        "Atherosclerotic calcifications are present in the aorta and coronary arteries.",
        "Coronary artery and aortic calcifications.",
    ),
    ("A small hiatal hernia is noted.", "Small hiatal hernia."),
    ("Cholelithiasis without evidence of cholecystitis.", "Cholelithiasis."),
]
ADMISSION_COMPLAINTS = [
    "shortness of breath", "chest pain", "fever", "fall", "abdominal pain", "weakness",
    "altered mental status", "transfer from outside hospital",
]
HOME_MEDS = [
    "aspirin 81 mg daily", "atorvastatin 40 mg daily", "metoprolol 25 mg twice daily",
    "lisinopril 10 mg daily", "omeprazole 20 mg daily", "vitamin D 1000 units daily",
    "acetaminophen as needed", "docusate 100 mg twice daily", "amlodipine 5 mg daily",
    "tamsulosin 0.4 mg nightly", "multivitamin daily", "senna as needed",
]

# --- instruction tasks (Savage et al.)
UTI_SYMPTOMS = [
    "dysuria", "urinary frequency", "urinary urgency", "suprapubic pain", "cloudy urine",
    "burning with urination", "new urinary incontinence",
]
UTI_TESTS = [
    "urinalysis positive for leukocyte esterase and nitrites",
    "pyuria with 50 WBC per high power field",
    "urine culture growing more than 100,000 CFU of E. coli",
    "started on nitrofurantoin for cystitis",
]
UTI_NEGATED = [
    "denies dysuria", "urinalysis negative", "no urinary symptoms", "urine culture with no growth",
]
NA_CHOICES = ["SIADH", "Hypovolemia", "Primary polydipsia"]
TRIAGE_PROVIDERS = ["Nurse", "Physician", "Pharmacist", "Scheduling"]
# (provider, urgency) -> message templates; {drug} and {day} are filled in.
TRIAGE_MESSAGES: dict[tuple[str, str], list[str]] = {
    ("Pharmacist", "Routine"): [
        "I need a refill of my {drug}, I have about a week left.",
        "Can I take my {drug} with food or should it be on an empty stomach?",
        "Is it okay to take ibuprofen while I am on {drug}?",
    ],
    ("Pharmacist", "Urgent"): [
        "I accidentally took a double dose of my {drug} this morning and feel dizzy.",
        "Since starting {drug} my lips and tongue are swelling.",
        "I ran out of {drug} three days ago and my heart is racing.",
    ],
    ("Scheduling", "Routine"): [
        "I need to reschedule my appointment on {day} because of work.",
        "Can I get a follow up visit booked for next month?",
        "Please cancel my visit on {day}, I will call back to rebook.",
    ],
    ("Scheduling", "Urgent"): [
        "The clinic cancelled my {day} visit and I need to be seen before my surgery this week.",
        "I was told to get an appointment within 48 hours after my hospital discharge.",
    ],
    ("Nurse", "Routine"): [
        "How should I clean the incision from my surgery?",
        "My blood pressure readings this week were 132/80 and 128/78, is that okay?",
        "Do I need to fast before my blood test on {day}?",
    ],
    ("Nurse", "Urgent"): [
        "My incision is red, warm and draining pus and I have a fever of 102.",
        "My blood sugar reading is 45 and I feel shaky and sweaty.",
        "I have been vomiting all day and cannot keep any fluids down.",
    ],
    ("Physician", "Routine"): [
        "Can you explain what my cholesterol results from {day} mean?",
        "I have had a mild rash on my elbows for a month, should I see dermatology?",
        "Should we change my {drug} dose since my readings are better?",
    ],
    ("Physician", "Urgent"): [
        "I have crushing chest pain and shortness of breath since this morning.",
        "I fainted at home today and hit my head.",
        "I am coughing up blood and feel short of breath.",
    ],
}
TRIAGE_DRUGS = [
    "metformin", "lisinopril", "warfarin", "atorvastatin", "levothyroxine", "sertraline",
]
TRIAGE_OPENERS = [
    "Hello,", "Hi doctor,", "Sorry to bother you.", "I hope you are well.",
    "My husband asked me to write.", "Good morning.",
]
TRIAGE_CLOSERS = ["Thank you.", "Thanks for your help.", "Please let me know.", "Best wishes."]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]
# Radiology requests outside an admission: (indication, question).
OUTPATIENT_INDICATIONS = [
    ("fall", "eval for fracture"), ("chronic cough", "eval for infiltrate"),
    ("headache", "eval for bleed"), ("abdominal pain", "eval for acute process"),
    ("follow up of lung nodule", "interval change"), ("preoperative evaluation", "eval"),
    ("leg swelling", "eval for DVT"), ("elevated liver enzymes", "eval for biliary dilation"),
]
FOLLOWUP_DEPTS = [
    "PRIMARY CARE", "CARDIOLOGY", "NEUROLOGY", "GASTROENTEROLOGY", "NEPHROLOGY", "PULMONARY",
    "HEPATOLOGY", "GENERAL SURGERY",
]
SUMMARY_DISPOSITIONS = [
    "home", "home with services", "a skilled nursing facility", "a rehabilitation facility",
]

# Physical exam lines, and where an abnormal finding goes (by keyword).
NORMAL_EXAM = {
    "GENERAL": "Alert, oriented, no acute distress", "HEENT": "Sclera anicteric, MMM, oropharynx clear",
    "NECK": "Supple, JVP not elevated, no LAD",
    "LUNGS": "Clear to auscultation bilaterally, no wheezes, rales, rhonchi",
    "CV": "Regular rate and rhythm, normal S1 + S2, no murmurs, rubs, gallops",
    "ABDOMEN": "Soft, non-tender, non-distended, bowel sounds present, no organomegaly",
    "EXTREMITIES": "Warm, well perfused, 2+ pulses, no clubbing, cyanosis or edema",
    "NEURO": "CNII-XII intact, 5/5 strength upper/lower extremities, grossly normal sensation",
    "SKIN": "No rashes or lesions",
}
EXAM_SYSTEMS = [
    ("NECK", ["JVP"]),
    ("LUNGS", ["crackles", "wheez", "egophony", "expiratory", "respirations", "accessory", "tachypneic"]),
    ("CV", ["murmur", "gallop", "irregular", "tachycardic", "S4"]),
    ("ABDOMEN", ["abdom", "ascites", "bowel", "guarding", "epigastric", "melena", "costovertebral",
                 "suprapubic", "angiomata"]),
    ("EXTREMITIES", ["edema", "erythema", "shin", "calf", "tinea", "leg"]),
    ("NEURO", ["drift", "droop", "strength", "dysarthria", "asterixis"]),
    ("HEENT", ["conjunctivae", "icterus", "mucous", "odor"]),
]

# The MIMIC-IV discharge summary layout: blocks joined by a line holding one space, as in the
# real files. Fields in braces are filled by `synthetic_text.discharge_text`.
DISCHARGE_BLOCKS = [
    "Name:  [**Known lastname {name}**]                 Unit No:   [**Numeric Identifier {unit}**]",
    "Admission Date:  {admit}              Discharge Date:   {disch}",
    "Date of Birth:  {dob}             Sex:   {sex}",
    "Service: {service}",
    "Allergies: \n{allergy}",
    "Attending: [**First Name3 (LF) {attending}**].",
    "Chief Complaint:\n{cc}",
    "Major Surgical or Invasive Procedure:\n{procedure}\n",
    "History of Present Illness:\n{hpi}",
    "Past Medical History:\n{pmh}",
    "Social History:\n{social}\nFamily History:\n{family}",
    "Physical Exam:\nADMISSION PHYSICAL EXAM:\n{exam_in}\n\nDISCHARGE PHYSICAL EXAM:\n{exam_out}",
    "Pertinent Results:\n{results}",
    "Brief Hospital Course:\n{course}",
    "Medications on Admission:\nThe Preadmission Medication list is accurate and complete.\n{meds_in}",
    "Discharge Medications:\n{meds_out}",
    "Discharge Disposition:\n{dispo}",
    "Discharge Diagnosis:\nPRIMARY DIAGNOSIS:\n{dx}\n\nSECONDARY DIAGNOSES:\n{dx2}",
    "Discharge Condition:\nMental Status: Clear and coherent.\nLevel of Consciousness: Alert and "
    "interactive.\nActivity Status: Ambulatory - Independent.",
    "Discharge Instructions:\nDear {who},\n\nIt was a pleasure taking care of you at [**Hospital1 18**]."
    "\n\nWHY WERE YOU ADMITTED TO THE HOSPITAL?\n- You were admitted because of {cc_lower}.\n\n"
    "WHAT HAPPENED WHILE YOU WERE IN THE HOSPITAL?\n- You were found to have {short}.\n- You were "
    "treated with {treatment}.\n- Your symptoms improved.\n\nWHAT SHOULD YOU DO WHEN YOU LEAVE THE "
    "HOSPITAL?\n- Please take all of your medications as prescribed.\n- Please attend your follow up "
    "appointments listed below.\n- Please call your doctor if your {cc_lower} comes back or gets "
    "worse.\n\nWe wish you the best!\nYour [**Hospital1 18**] Care Team",
    "Followup Instructions:\n{followups}",
]
FOLLOWUP_BLOCK = (
    "Department: {dept}\nWhen: {weekday} {date} at {hour}:{minute} AM\nWith: [**First Name8 "
    "(NamePattern2) {n1}**] [**Last Name (NamePattern1) {n2}**], MD [**Telephone/Fax (1) {n3}**]\n"
    "Building: [**Hospital6 29**] [**Location (un) {n4}**]\n"
)
# fmt: on
