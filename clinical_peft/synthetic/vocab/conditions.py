"""Admission reasons and chronic problems: the clinical core every synthetic note draws on."""

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

# fmt: on
